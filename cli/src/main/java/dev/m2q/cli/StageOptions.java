package dev.m2q.cli;

import dev.m2q.cli.ReleaseCommand.Stage;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import picocli.CommandLine;
import picocli.CommandLine.Model.OptionSpec;

/**
 * How {@code m2q release} treats one option of a stage's command: a recipe or command-line value checked against
 * the option (by the command's own parser), turned into the command-line tokens the stage runs with, and recorded
 * with its type in the effective recipe.
 */
final class StageOptions {
    private StageOptions() {}

    static OptionSpec negatedOf(Map<String, OptionSpec> options, String name) {
        if (!name.startsWith("--no-")) {
            return null;
        }
        OptionSpec o = options.get("--" + name.substring(5));
        return o != null && o.negatable() ? o : null;
    }

    static String unknown(Stage s, String key, Map<String, OptionSpec> options) {
        String full = s.section + "." + key;
        if (s.wired.contains("--" + key) || "overwrite".equals(key)) {
            return full + ": set by m2q release itself (--model, --out, --draft and the stages' folders)";
        }
        String best = nearest("--" + key, options.keySet());
        return full + ": not an option of m2q " + String.join(" ", s.command)
                + (best != null ? " (did you mean " + best.substring(2) + "?)" : "");
    }

    /**
     * The name among {@code names} closest to {@code name} by edit distance, when it is a likely typo: at most 2
     * edits and fewer than a third of the name's letters; else null.
     */
    static String nearest(String name, Iterable<String> names) {
        String best = null;
        int bestD = Math.min(3, (name.length() - 2 + 2) / 3);
        for (String o : names) {
            int d = distance(name, o);
            if (d < bestD) {
                bestD = d;
                best = o;
            }
        }
        return best;
    }

    static int distance(String a, String b) {
        int[] prev = new int[b.length() + 1];
        int[] cur = new int[b.length() + 1];
        for (int j = 0; j <= b.length(); j++) {
            prev[j] = j;
        }
        for (int i = 1; i <= a.length(); i++) {
            cur[0] = i;
            for (int j = 1; j <= b.length(); j++) {
                int sub = prev[j - 1] + (a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1);
                cur[j] = Math.min(sub, Math.min(prev[j] + 1, cur[j - 1] + 1));
            }
            int[] t = prev;
            prev = cur;
            cur = t;
        }
        return prev[b.length()];
    }

    /** Null when {@code v} is a valid value of {@code o}, else why not (checked by the command's own parser). */
    static String typeError(Stage s, OptionSpec o, Recipe.Value v) {
        boolean isBool = o.typeInfo().isBoolean() && o.arity().max() == 0;
        if (v.kind() == Recipe.Value.Kind.NULL) {
            return null;
        }
        if (isBool) {
            String b = v.scalar();
            if (v.list() || !("true".equals(b) || "false".equals(b))) {
                return "expected true or false, got " + (v.list() ? v.items() : "'" + b + "'");
            }
            if ("false".equals(b) && defaultBoolean(o) && !o.negatable()) {
                return "is on by default and cannot be turned off";
            }
            return null;
        }
        if (v.kind() == Recipe.Value.Kind.BOOLEAN) {
            return "expected " + typeName(o) + ", got " + v.scalar();
        }
        if (v.list() && !o.isMultiValue()) {
            return "takes one value, written as on the command line (e.g. \"1,3,5\" for a list the command"
                    + " parses itself), got a YAML list " + v.items();
        }
        try {
            new CommandLine(s.factory.get()).parseArgs(tokens(o, v).toArray(String[]::new));
        } catch (CommandLine.MissingParameterException e) {
            return null; // the types were fine; the release sets the required options itself
        } catch (CommandLine.ParameterException e) {
            return e.getMessage();
        }
        return null;
    }

    static String typeName(OptionSpec o) {
        Class<?> t =
                o.isMultiValue() ? o.typeInfo().getAuxiliaryTypeInfos().get(0).getType() : o.type();
        if (t == int.class || t == Integer.class || t == long.class || t == Long.class) {
            return "an integer";
        }
        if (t == double.class || t == Double.class || t == float.class || t == Float.class) {
            return "a number";
        }
        if (t.isEnum()) {
            return "one of " + List.of(t.getEnumConstants());
        }
        return t == Path.class ? "a path" : "a value";
    }

    static boolean defaultBoolean(OptionSpec o) {
        return o.defaultValue() != null && Boolean.parseBoolean(o.defaultValue());
    }

    /** The command-line tokens that give {@code o} the value {@code v}. */
    static List<String> tokens(OptionSpec o, Recipe.Value v) {
        String name = o.longestName();
        if (v.kind() == Recipe.Value.Kind.NULL) {
            return List.of();
        }
        if (o.typeInfo().isBoolean() && o.arity().max() == 0) {
            boolean on = "true".equals(v.scalar());
            if (on == defaultBoolean(o)) {
                return List.of();
            }
            return List.of(on ? name : "--no-" + name.substring(2));
        }
        if (sameAsDefault(o, v)) {
            return List.of(); // as if not given: commands refuse an option that does not apply, even at its default
        }
        if (o.isMultiValue()) {
            String split = o.splitRegex();
            List<String> items = v.list() ? v.items() : List.of(v.scalar());
            if (split != null && !split.isEmpty()) {
                return List.of(name, String.join(split.equals("\\s") ? " " : ",", items));
            }
            List<String> t = new ArrayList<>();
            items.forEach(x -> t.addAll(List.of(name, x)));
            return t;
        }
        return List.of(name, v.scalar());
    }

    /** Whether {@code v} is the option's default (the same text, or the same number written differently). */
    static boolean sameAsDefault(OptionSpec o, Recipe.Value v) {
        String d = o.defaultValue();
        if (d == null) {
            return false;
        }
        List<String> want = splitItems(o, d);
        List<String> got = v.list() ? v.items() : o.isMultiValue() ? splitItems(o, v.scalar()) : List.of(v.scalar());
        if (want.size() != got.size()) {
            return false;
        }
        for (int i = 0; i < want.size(); i++) {
            String a = want.get(i).trim();
            String b = got.get(i).trim();
            if (!a.equals(b) && !sameNumber(a, b)) {
                return false;
            }
        }
        return true;
    }

    static boolean sameNumber(String a, String b) {
        try {
            return Double.parseDouble(a) == Double.parseDouble(b);
        } catch (NumberFormatException e) {
            return false;
        }
    }

    static boolean isPath(OptionSpec o) {
        if (o == null) {
            return false;
        }
        Class<?> t = o.isMultiValue() && !o.typeInfo().getAuxiliaryTypeInfos().isEmpty()
                ? o.typeInfo().getAuxiliaryTypeInfos().get(0).getType()
                : o.type();
        return t == Path.class;
    }

    /** The value to record for an option: the given one, else its default; typed for YAML. Null: no value. */
    static Object effective(OptionSpec o, Recipe.Value given) {
        boolean isBool = o.typeInfo().isBoolean() && o.arity().max() == 0;
        if (given != null && given.kind() != Recipe.Value.Kind.NULL) {
            if (isBool) {
                return Boolean.parseBoolean(given.scalar());
            }
            if (o.isMultiValue()) {
                List<String> items = given.list() ? given.items() : splitItems(o, given.scalar());
                return items.stream().map(x -> typed(o, x)).toList();
            }
            return typed(o, given.scalar());
        }
        if (isBool) {
            return defaultBoolean(o);
        }
        String d = o.defaultValue();
        if (d == null) {
            return null;
        }
        if (o.isMultiValue()) {
            return splitItems(o, d).stream().map(x -> typed(o, x)).toList();
        }
        return typed(o, d);
    }

    static List<String> splitItems(OptionSpec o, String s) {
        String split = o.splitRegex();
        return split == null || split.isEmpty() ? List.of(s) : List.of(s.split(split));
    }

    static Object typed(OptionSpec o, String s) {
        Class<?> t = o.isMultiValue() && !o.typeInfo().getAuxiliaryTypeInfos().isEmpty()
                ? o.typeInfo().getAuxiliaryTypeInfos().get(0).getType()
                : o.type();
        try {
            if (t == int.class || t == Integer.class || t == long.class || t == Long.class) {
                return Long.parseLong(s.trim());
            }
            if (t == double.class || t == Double.class || t == float.class || t == Float.class) {
                return Double.parseDouble(s.trim());
            }
        } catch (NumberFormatException e) {
            return s; // a value the command parses itself (e.g. a size with a unit)
        }
        return s;
    }
}
