package dev.m2q.cli;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import com.fasterxml.jackson.dataformat.yaml.YAMLGenerator;
import dev.m2q.core.InputException;
import java.io.IOException;
import java.io.StringWriter;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The recipe of {@code m2q release}, a small YAML file: top-level scalars ({@code model}, {@code draft}), one
 * mapping per stage ({@code quantize}, {@code eagle-data}, {@code eagle-train}, {@code validate}) whose keys are
 * that command's long option names without the dashes, and {@code inputs} (the sha256 of every input file, written
 * by m2q into a release's {@code m2q-recipe.yaml}). Read strictly: a duplicate key, a nested value where a scalar
 * belongs or anything that is not YAML is exit 2 naming the file and line; which keys each stage accepts and
 * their types are checked against the stage's command ({@link ReleaseCommand}).
 */
record Recipe(Path file, Map<String, Value> top, Map<String, Map<String, Value>> sections) {
    /** Sections holding stage options, in stage order. */
    static final List<String> STAGE_SECTIONS = List.of("quantize", "eagle-data", "eagle-train", "validate");
    /** The section of input hashes m2q writes into a release's recipe. */
    static final String INPUTS = "inputs";
    /** Top-level scalar keys. */
    static final List<String> TOP_KEYS = List.of("m2q-recipe", "model", "draft");

    /**
     * One value as written: its scalars as text (a sequence gives several), whether it was a sequence, whether
     * its scalar was a YAML boolean, and the line it is on (for messages).
     */
    record Value(List<String> items, boolean list, Kind kind, int line) {
        enum Kind {
            STRING,
            NUMBER,
            BOOLEAN,
            NULL
        }

        String scalar() {
            return items.isEmpty() ? null : items.get(0);
        }
    }

    /** An empty recipe (no --recipe). */
    static Recipe empty() {
        return new Recipe(null, Map.of(), Map.of());
    }

    /** Reads a recipe file; exit 2 naming the file and line for anything that is not the expected shape. */
    static Recipe read(Path file) {
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(file);
        } catch (NoSuchFileException e) {
            throw new InputException(file + ": --recipe: no such file");
        } catch (IOException e) {
            throw new InputException(file + ": --recipe: cannot read: " + e.getMessage(), e);
        }
        String text;
        try {
            text = StandardCharsets.UTF_8
                    .newDecoder()
                    .decode(java.nio.ByteBuffer.wrap(bytes))
                    .toString();
        } catch (CharacterCodingException e) {
            throw new InputException(file + ": --recipe: not UTF-8 text");
        }
        return parse(file, text);
    }

    /** Parses recipe text; {@code file} names it in messages. */
    static Recipe parse(Path file, String text) {
        Map<String, Value> top = new LinkedHashMap<>();
        Map<String, Map<String, Value>> sections = new LinkedHashMap<>();
        try (JsonParser p = new YAMLFactory().createParser(text)) {
            JsonToken t = p.nextToken();
            if (t == null) {
                return new Recipe(file, top, sections);
            }
            if (t != JsonToken.START_OBJECT) {
                throw error(
                        file,
                        p,
                        "the recipe must be a mapping of keys (model, draft, quantize, eagle-data,"
                                + " eagle-train, validate)");
            }
            while ((t = p.nextToken()) == JsonToken.FIELD_NAME) {
                String key = p.currentName();
                int line = line(p);
                if (top.containsKey(key) || sections.containsKey(key)) {
                    throw error(file, line, key + ": duplicate key");
                }
                t = p.nextToken();
                if (STAGE_SECTIONS.contains(key) || INPUTS.equals(key)) {
                    if (t == JsonToken.VALUE_NULL) {
                        sections.put(key, new LinkedHashMap<>());
                        continue;
                    }
                    if (t != JsonToken.START_OBJECT) {
                        throw error(file, line, key + ": must be a mapping of option names to values");
                    }
                    sections.put(key, section(file, p, key));
                } else if (TOP_KEYS.contains(key)) {
                    top.put(key, value(file, p, key, line));
                } else {
                    throw error(
                            file,
                            line,
                            key + ": unknown key (the recipe's keys are " + String.join(", ", TOP_KEYS) + ", "
                                    + String.join(", ", STAGE_SECTIONS) + " and " + INPUTS + ")");
                }
            }
            if (p.nextToken() != null) {
                throw error(file, p, "more than one YAML document; a recipe is one mapping");
            }
        } catch (IOException e) { // Jackson's parse errors carry their own location
            throw new InputException(file + ": --recipe: not valid YAML: " + firstLine(e.getMessage()), e);
        }
        return new Recipe(file, top, sections);
    }

    private static Map<String, Value> section(Path file, JsonParser p, String section) throws IOException {
        Map<String, Value> values = new LinkedHashMap<>();
        JsonToken t;
        while ((t = p.nextToken()) == JsonToken.FIELD_NAME) {
            String key = p.currentName();
            int line = line(p);
            if (values.containsKey(key)) {
                throw error(file, line, section + "." + key + ": duplicate key");
            }
            p.nextToken();
            values.put(key, value(file, p, section + "." + key, line));
        }
        if (t != JsonToken.END_OBJECT) {
            throw error(file, p, section + ": expected option names");
        }
        return values;
    }

    /** The value at the current token: a scalar, or a sequence of scalars. */
    private static Value value(Path file, JsonParser p, String key, int line) throws IOException {
        JsonToken t = p.currentToken();
        if (t == JsonToken.START_ARRAY) {
            List<String> items = new ArrayList<>();
            Value.Kind kind = Value.Kind.STRING;
            while ((t = p.nextToken()) != JsonToken.END_ARRAY) {
                if (t == null || t.isStructStart()) {
                    throw error(file, line, key + ": a list holds plain values, not lists or mappings");
                }
                items.add(p.getText());
                kind = kindOf(t);
            }
            return new Value(List.copyOf(items), true, kind, line);
        }
        if (t == JsonToken.START_OBJECT) {
            throw error(file, line, key + ": expected a value, found a mapping");
        }
        if (t == JsonToken.VALUE_NULL) {
            return new Value(List.of(), false, Value.Kind.NULL, line);
        }
        return new Value(List.of(p.getText()), false, kindOf(t), line);
    }

    private static Value.Kind kindOf(JsonToken t) {
        return switch (t) {
            case VALUE_TRUE, VALUE_FALSE -> Value.Kind.BOOLEAN;
            case VALUE_NUMBER_INT, VALUE_NUMBER_FLOAT -> Value.Kind.NUMBER;
            case VALUE_NULL -> Value.Kind.NULL;
            default -> Value.Kind.STRING;
        };
    }

    private static int line(JsonParser p) {
        return p.currentTokenLocation().getLineNr();
    }

    private static InputException error(Path file, JsonParser p, String what) {
        return error(file, line(p), what);
    }

    static InputException error(Path file, int line, String what) {
        return new InputException(file + ":" + line + ": --recipe: " + what);
    }

    private static String firstLine(String s) {
        if (s == null) {
            return "";
        }
        int nl = s.indexOf('\n');
        return nl < 0 ? s : s.substring(0, nl);
    }

    /**
     * YAML text of an effective recipe: {@code header} as comment lines, then the mapping (scalars as given:
     * Long, Double, Boolean, String; lists of them), keys in the given order.
     */
    static String write(String header, Map<String, Object> recipe) {
        StringBuilder sb = new StringBuilder();
        for (String line : header.split("\n", -1)) {
            sb.append(line.isEmpty() ? "#" : "# " + line).append('\n');
        }
        StringWriter w = new StringWriter();
        YAMLFactory f = YAMLFactory.builder()
                .disable(YAMLGenerator.Feature.WRITE_DOC_START_MARKER)
                .enable(YAMLGenerator.Feature.MINIMIZE_QUOTES)
                .enable(YAMLGenerator.Feature.ALWAYS_QUOTE_NUMBERS_AS_STRINGS)
                .build();
        try (YAMLGenerator g = f.createGenerator(w)) {
            writeValue(g, recipe);
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
        return sb.append(w).toString();
    }

    @SuppressWarnings("unchecked")
    private static void writeValue(YAMLGenerator g, Object v) throws IOException {
        switch (v) {
            case Map<?, ?> m -> {
                g.writeStartObject();
                for (Map.Entry<?, ?> e : m.entrySet()) {
                    g.writeFieldName((String) e.getKey());
                    writeValue(g, e.getValue());
                }
                g.writeEndObject();
            }
            case List<?> l -> {
                g.writeStartArray();
                for (Object o : l) {
                    writeValue(g, o);
                }
                g.writeEndArray();
            }
            case Long n -> g.writeNumber(n);
            case Integer n -> g.writeNumber(n);
            case Double d -> g.writeNumber(d);
            case Boolean b -> g.writeBoolean(b);
            case null -> g.writeNull();
            default -> g.writeString(v.toString());
        }
    }
}
