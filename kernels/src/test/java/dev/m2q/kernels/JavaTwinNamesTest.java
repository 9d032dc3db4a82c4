package dev.m2q.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.reflect.Method;
import java.net.URI;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.file.FileSystem;
import java.nio.file.FileSystemNotFoundException;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Deque;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * Every Java name that a CUDA source gives as a kernel's twin exists: a renamed or moved Java method fails this
 * test, naming the .cu line, instead of leaving a comment that points nowhere (REVIEW §0 found six such names).
 *
 * <p>The convention: a comment line of src/main/cuda/*.cu or *.cuh containing "Java twin" (usually {@code //
 * Java twin: X.y, Kernels#y javadoc.}, inside macros {@code /* Java twin: X.y ... *}{@code /}). Every name on
 * the rest of that line of the form {@code Class.member}, {@code Class#member} or {@code Outer.Nested[.member]}
 * is resolved: the class by its simple name among the classes of the dev.m2q packages on the test class path
 * (or by its full name when it starts with java., javax. or jdk.), the member as a method declared by the class
 * or one of its supertypes, or as a nested class.
 */
class JavaTwinNamesTest {
    /** The qualified names on a "Java twin" line: optional JDK package, classes, optional member. */
    private static final Pattern NAME = Pattern.compile("(?<![\\w.#])((?:java|javax|jdk)\\.(?:[a-z][a-z0-9_]*\\.)*)?"
            + "([A-Z][A-Za-z0-9_]*(?:\\.[A-Z][A-Za-z0-9_]*)*)(?:([.#])([a-z][A-Za-z0-9_]*))?");

    /** One name as written, where. */
    record Ref(String file, int line, String name) {
        @Override
        public String toString() {
            return file + ":" + line + ": Java twin " + name;
        }
    }

    @Test
    void everyJavaTwinNameInTheCudaSourcesResolves() throws IOException {
        List<Ref> refs = refs(KernelBuildTest.CUDA_SOURCES);
        Map<String, List<Class<?>>> classes = m2qClasses();
        List<String> stale = new ArrayList<>();
        Set<String> files = new HashSet<>();
        for (Ref r : refs) {
            files.add(r.file());
            resolve(r.name(), classes).ifPresent(why -> stale.add(r + ": " + why));
        }
        assertEquals(List.of(), stale, "stale Java twin names; point them at the methods that are the twins now");
        // The parse found the names it should: the kernels files each name several twins.
        assertTrue(refs.size() >= 30, "only " + refs.size() + " Java twin names found: " + refs);
        for (String f : List.of("cholesky.cu", "gemm.cu", "gptq.cu", "layer.cu", "w4.cu", "probe.cu")) {
            assertTrue(files.contains(f), f + " names no Java twin that this test could parse");
        }
    }

    /**
     * The resolver itself: names REVIEW §0 found stale (and names made stale by moving GPTQ into gptq/) fail,
     * their replacements pass. (Its sixth, Rope.apply, still exists, as the per-row rotation, so only the
     * comment's meaning was stale there.)
     */
    @Test
    void theResolverRefusesTheStaleNamesOfTheReview() throws IOException {
        Map<String, List<Class<?>>> classes = m2qClasses();
        for (String stale : List.of(
                "DecoderLayer.rmsNorm",
                "DecoderLayer.attention",
                "Gptq.groupScales",
                "DampedCholesky.choleskyLower",
                "DampedCholesky.invertLowerInPlace",
                "NoSuchClass.method",
                "Matrix.NoSuchNested",
                "java.util.Arrays.nope")) {
            assertTrue(resolve(stale, classes).isPresent(), stale + " must not resolve");
        }
        for (String good : List.of(
                "JavaOps.rmsNorm",
                "JavaOps.rope",
                "Kernels#attention",
                "GptqLoop.run",
                "JavaCholesky.choleskyLower",
                "Matrix.W4.dequantize",
                "Matrix.F32",
                "java.util.Arrays.fill")) {
            assertEquals(Optional.empty(), resolve(good, classes), good);
        }
    }

    /** The names on every "Java twin" line of the .cu and .cuh files in {@code dir}, in file and line order. */
    static List<Ref> refs(Path dir) throws IOException {
        List<Path> sources;
        try (Stream<Path> s = Files.list(dir)) {
            sources = s.filter(p -> p.toString().endsWith(".cu") || p.toString().endsWith(".cuh"))
                    .sorted()
                    .toList();
        }
        List<Ref> refs = new ArrayList<>();
        for (Path p : sources) {
            List<String> lines = Files.readAllLines(p);
            for (int i = 0; i < lines.size(); i++) {
                String line = lines.get(i);
                int at = line.indexOf("Java twin");
                if (at < 0) {
                    continue;
                }
                Matcher m = NAME.matcher(line.substring(at + "Java twin".length()));
                while (m.find()) {
                    if (m.group(1) != null || m.group(3) != null || m.group(2).contains(".")) {
                        refs.add(new Ref(p.getFileName().toString(), i + 1, m.group()));
                    }
                }
            }
        }
        return refs;
    }

    /** Empty when {@code name} resolves, else why not. */
    static Optional<String> resolve(String name, Map<String, List<Class<?>>> classes) {
        Matcher m = NAME.matcher(name);
        if (!m.matches()) {
            return Optional.of("not a Class.member name");
        }
        String[] path = m.group(2).split("\\.");
        List<Class<?>> candidates = new ArrayList<>();
        if (m.group(1) != null) {
            try {
                candidates.add(Class.forName(m.group(1) + path[0], false, JavaTwinNamesTest.class.getClassLoader()));
            } catch (ClassNotFoundException e) {
                return Optional.of("no class " + m.group(1) + path[0]);
            }
        } else {
            candidates.addAll(classes.getOrDefault(path[0], List.of()));
            if (candidates.isEmpty()) {
                return Optional.of("no class " + path[0] + " in the dev.m2q packages");
            }
        }
        String member = m.group(4);
        List<String> misses = new ArrayList<>();
        for (Class<?> top : candidates) {
            Class<?> c = top;
            for (int i = 1; i < path.length && c != null; i++) {
                c = nested(c, path[i]);
            }
            if (c == null) {
                misses.add("no nested class " + m.group(2) + " in " + top.getName());
            } else if (member == null || hasMethod(c, member)) {
                return Optional.empty();
            } else {
                misses.add("no method " + member + " in " + c.getName() + " or its supertypes");
            }
        }
        return Optional.of(String.join("; ", misses));
    }

    private static Class<?> nested(Class<?> outer, String simpleName) {
        for (Class<?> c : outer.getDeclaredClasses()) {
            if (c.getSimpleName().equals(simpleName)) {
                return c;
            }
        }
        return null;
    }

    private static boolean hasMethod(Class<?> c, String name) {
        Deque<Class<?>> todo = new ArrayDeque<>(List.of(c));
        Set<Class<?>> seen = new HashSet<>();
        while (!todo.isEmpty()) {
            Class<?> t = todo.pop();
            if (!seen.add(t)) {
                continue;
            }
            for (Method method : t.getDeclaredMethods()) {
                if (method.getName().equals(name)) {
                    return true;
                }
            }
            if (t.getSuperclass() != null) {
                todo.push(t.getSuperclass());
            }
            Collections.addAll(todo, t.getInterfaces());
        }
        return false;
    }

    /**
     * The top-level classes under dev/m2q on the test class path (core, gptq and kernels, as directories in the
     * reactor or as jars), by simple name, loaded without initialization (no device library is touched).
     */
    static Map<String, List<Class<?>>> m2qClasses() throws IOException {
        ClassLoader loader = JavaTwinNamesTest.class.getClassLoader();
        Set<String> names = new HashSet<>();
        for (URL url : Collections.list(loader.getResources("dev/m2q"))) {
            Path root = root(url);
            try (Stream<Path> s = Files.walk(root)) {
                s.map(p -> root.relativize(p)
                                .toString()
                                .replace(root.getFileSystem().getSeparator(), "/"))
                        .filter(p -> p.endsWith(".class") && !p.contains("$") && !p.endsWith("package-info.class"))
                        .forEach(p -> names.add("dev.m2q."
                                + p.substring(0, p.length() - ".class".length()).replace('/', '.')));
            }
        }
        Map<String, List<Class<?>>> bySimple = new TreeMap<>();
        for (String n : names) {
            try {
                Class<?> c = Class.forName(n, false, loader);
                bySimple.computeIfAbsent(c.getSimpleName(), x -> new ArrayList<>())
                        .add(c);
            } catch (ClassNotFoundException | LinkageError e) {
                throw new IllegalStateException("cannot load " + n + " from the test class path: " + e, e);
            }
        }
        return bySimple;
    }

    /** dev/m2q as a Path, in a directory or inside a jar. */
    private static Path root(URL url) throws IOException {
        try {
            URI uri = url.toURI();
            if (uri.getScheme().equals("jar")) {
                FileSystem fs;
                try {
                    fs = FileSystems.getFileSystem(uri);
                } catch (FileSystemNotFoundException e) {
                    fs = FileSystems.newFileSystem(uri, Map.of());
                }
                return fs.getPath("/dev/m2q");
            }
            return Path.of(uri);
        } catch (URISyntaxException e) {
            throw new UncheckedIOException(new IOException("class path entry " + url + " is not a URI", e));
        }
    }
}
