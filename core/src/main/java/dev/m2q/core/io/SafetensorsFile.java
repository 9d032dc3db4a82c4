package dev.m2q.core.io;

import static java.nio.ByteOrder.LITTLE_ENDIAN;

import dev.m2q.core.InputException;
import dev.m2q.core.json.Json;
import dev.m2q.core.json.JsonException;
import dev.m2q.core.tensor.DType;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;

/**
 * One safetensors file, memory-mapped (files of any size, no copy into the heap) and strictly validated on open.
 *
 * <p>Layout: bytes [0, 8) hold the header length {@code n} as a little-endian u64; bytes [8, 8 + n) a UTF-8 JSON
 * object {@code {"__metadata__": {str: str}, name: {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]},
 * …}}, possibly padded with spaces; the data section starts at {@code dataStart() = 8 + n}, and each tensor's
 * bytes are [dataStart + begin, dataStart + end), row-major and little-endian.
 *
 * <p>The mapping lives in a shared arena: views may be read from any thread, and all of them become invalid when
 * this file is closed.
 */
public final class SafetensorsFile implements AutoCloseable {
    /** The largest header accepted, as in the reference implementation. */
    public static final long MAX_HEADER_BYTES = 100_000_000L;

    private static final String METADATA_KEY = "__metadata__";
    private static final Set<String> ENTRY_KEYS = Set.of("dtype", "shape", "data_offsets");
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(LITTLE_ENDIAN);

    private final Path path;
    private final Arena arena;
    private final long dataStart;
    private final Map<String, TensorView> tensors;
    private final Map<String, String> metadata;

    private SafetensorsFile(
            Path path, Arena arena, long dataStart, Map<String, TensorView> tensors, Map<String, String> metadata) {
        this.path = path;
        this.arena = arena;
        this.dataStart = dataStart;
        this.tensors = tensors;
        this.metadata = metadata;
    }

    /**
     * Maps and validates {@code path}.
     *
     * @throws SafetensorsFormatException when the file is not a well-formed safetensors file
     * @throws InputException when it cannot be read at all
     */
    public static SafetensorsFile open(Path path) {
        Arena arena = Arena.ofShared();
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            long size = ch.size();
            if (size < 8) {
                throw new SafetensorsFormatException(
                        path, "file is " + size + " bytes, shorter than the 8-byte header length");
            }
            MemorySegment file = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
            return parse(path, arena, file);
        } catch (NoSuchFileException e) {
            arena.close();
            throw new InputException(path + ": no such file");
        } catch (IOException e) {
            arena.close();
            throw new InputException(path + ": cannot read: " + e.getMessage(), e);
        } catch (RuntimeException | Error e) {
            arena.close();
            throw e;
        }
    }

    private static SafetensorsFile parse(Path path, Arena arena, MemorySegment file) {
        long size = file.byteSize();
        long headerLen = file.get(U64, 0);
        if (headerLen == 0) {
            throw new SafetensorsFormatException(path, "header length is 0");
        }
        if (headerLen < 0 || headerLen > MAX_HEADER_BYTES) {
            throw new SafetensorsFormatException(
                    path,
                    "header length " + Long.toUnsignedString(headerLen) + " exceeds the limit of " + MAX_HEADER_BYTES
                            + " bytes (not a safetensors file?)");
        }
        if (headerLen > size - 8) {
            throw new SafetensorsFormatException(
                    path,
                    "header length " + headerLen + " runs past the end of the file (" + size
                            + " bytes; truncated download?)");
        }
        Map<String, Object> root = parseHeaderJson(path, file.asSlice(8, headerLen));
        long dataStart = 8 + headerLen;
        long dataSize = size - dataStart;

        Map<String, String> metadata = Map.of();
        List<Entry> entries = new ArrayList<>(root.size());
        for (Map.Entry<String, Object> e : root.entrySet()) {
            if (e.getKey().equals(METADATA_KEY)) {
                metadata = parseMetadata(path, e.getValue());
            } else {
                entries.add(parseEntry(path, e.getKey(), e.getValue(), dataSize));
            }
        }
        checkOverlaps(path, entries);

        Map<String, TensorView> tensors = new LinkedHashMap<>();
        for (Entry t : entries) {
            MemorySegment data = file.asSlice(dataStart + t.begin, t.end - t.begin);
            tensors.put(t.name, new TensorView(t.name, t.dtype, t.shape, data, path));
        }
        return new SafetensorsFile(path, arena, dataStart, Collections.unmodifiableMap(tensors), metadata);
    }

    private static Map<String, Object> parseHeaderJson(Path path, MemorySegment header) {
        String text;
        try {
            text = StandardCharsets.UTF_8
                    .newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(header.toArray(ValueLayout.JAVA_BYTE)))
                    .toString();
        } catch (CharacterCodingException e) {
            throw new SafetensorsFormatException(path, null, "header is not valid UTF-8", e);
        }
        Object root;
        try {
            root = Json.parse(text);
        } catch (JsonException | NumberFormatException e) {
            throw new SafetensorsFormatException(path, null, "header is not valid JSON: " + e.getMessage(), e);
        }
        if (!(root instanceof Map<?, ?> m)) {
            throw new SafetensorsFormatException(path, "header is not a JSON object");
        }
        @SuppressWarnings("unchecked")
        Map<String, Object> map = (Map<String, Object>) m;
        return map;
    }

    private static Map<String, String> parseMetadata(Path path, Object value) {
        if (!(value instanceof Map<?, ?> m)) {
            throw new SafetensorsFormatException(path, METADATA_KEY + " is " + jsonType(value) + ", not an object");
        }
        Map<String, String> out = new LinkedHashMap<>();
        for (Map.Entry<?, ?> e : m.entrySet()) {
            if (!(e.getValue() instanceof String s)) {
                throw new SafetensorsFormatException(
                        path,
                        METADATA_KEY + " value of " + SafetensorsFormatException.quote((String) e.getKey()) + " is "
                                + jsonType(e.getValue()) + ", not a string");
            }
            out.put((String) e.getKey(), s);
        }
        return Collections.unmodifiableMap(out);
    }

    private record Entry(String name, DType dtype, long[] shape, long begin, long end) {}

    private static Entry parseEntry(Path path, String name, Object value, long dataSize) {
        if (!(value instanceof Map<?, ?> m)) {
            throw new SafetensorsFormatException(path, name, "entry is " + jsonType(value) + ", not an object");
        }
        if (!m.keySet().equals(ENTRY_KEYS)) {
            Set<Object> missing = new TreeSet<>(ENTRY_KEYS);
            missing.removeAll(m.keySet());
            List<String> extra = m.keySet().stream()
                    .map(k -> (String) k)
                    .filter(k -> !ENTRY_KEYS.contains(k))
                    .map(SafetensorsFormatException::quote)
                    .toList();
            throw new SafetensorsFormatException(
                    path,
                    name,
                    "entry must have exactly the keys dtype, shape, data_offsets"
                            + (missing.isEmpty() ? "" : "; missing " + missing)
                            + (extra.isEmpty() ? "" : "; unexpected " + extra));
        }
        if (!(m.get("dtype") instanceof String dtypeName)) {
            throw new SafetensorsFormatException(path, name, "dtype is " + jsonType(m.get("dtype")) + ", not a string");
        }
        DType dtype = DType.fromSafetensorsName(dtypeName)
                .orElseThrow(() -> new SafetensorsFormatException(
                        path,
                        name,
                        "unknown dtype " + SafetensorsFormatException.quote(dtypeName) + " (known: "
                                + Arrays.stream(DType.values()).map(DType::name).collect(Collectors.joining(", "))
                                + ")"));
        long[] shape = longArray(path, name, "shape", m.get("shape"), -1);
        long[] offsets = longArray(path, name, "data_offsets", m.get("data_offsets"), 2);
        long begin = offsets[0];
        long end = offsets[1];
        String offsetsText = "data_offsets [" + begin + ", " + end + "]";
        if (begin > end) {
            throw new SafetensorsFormatException(path, name, offsetsText + " begin after end");
        }
        if (end > dataSize) {
            throw new SafetensorsFormatException(
                    path, name, offsetsText + " end past the data section (" + dataSize + " bytes; truncated file?)");
        }
        long bytes;
        try {
            bytes = Math.multiplyExact(TensorView.numel(shape), dtype.bytes());
        } catch (ArithmeticException e) {
            throw new SafetensorsFormatException(
                    path, name, "shape " + Arrays.toString(shape) + " has more elements than a long can count");
        }
        if (bytes != end - begin) {
            throw new SafetensorsFormatException(
                    path,
                    name,
                    dtype + " " + Arrays.toString(shape) + " is " + bytes + " bytes but " + offsetsText + " span "
                            + (end - begin));
        }
        return new Entry(name, dtype, shape, begin, end);
    }

    /** A JSON array of non-negative integers ({@code length} of them, or any number when negative). */
    private static long[] longArray(Path path, String name, String key, Object value, int length) {
        if (!(value instanceof List<?> list)) {
            throw new SafetensorsFormatException(path, name, key + " is " + jsonType(value) + ", not an array");
        }
        if (length >= 0 && list.size() != length) {
            throw new SafetensorsFormatException(
                    path, name, key + " has " + list.size() + " elements, expected " + length);
        }
        long[] out = new long[list.size()];
        for (int i = 0; i < out.length; i++) {
            Object v = list.get(i);
            if (v instanceof BigInteger b) {
                throw new SafetensorsFormatException(
                        path, name, key + "[" + i + "] = " + abbreviate(b.toString()) + " is out of range");
            }
            if (!(v instanceof Long l)) {
                throw new SafetensorsFormatException(
                        path, name, key + "[" + i + "] is " + jsonType(v) + ", not an integer");
            }
            if (l < 0) {
                throw new SafetensorsFormatException(path, name, key + "[" + i + "] = " + l + " is negative");
            }
            out[i] = l;
        }
        return out;
    }

    private static void checkOverlaps(Path path, List<Entry> entries) {
        List<Entry> sorted = entries.stream()
                .filter(e -> e.end > e.begin)
                .sorted(Comparator.comparingLong(Entry::begin))
                .toList();
        for (int i = 1; i < sorted.size(); i++) {
            Entry prev = sorted.get(i - 1);
            Entry cur = sorted.get(i);
            if (cur.begin < prev.end) {
                throw new SafetensorsFormatException(
                        path,
                        cur.name,
                        "data_offsets [" + cur.begin + ", " + cur.end + "] overlap those of tensor "
                                + SafetensorsFormatException.quote(prev.name) + " [" + prev.begin + ", " + prev.end
                                + "]");
            }
        }
    }

    private static String jsonType(Object v) {
        return switch (v) {
            case null -> "null";
            case String s -> "a string";
            case Boolean b -> "a boolean";
            case Number n -> "a number";
            case Map<?, ?> m -> "an object";
            case List<?> l -> "an array";
            default -> "a " + v.getClass().getSimpleName();
        };
    }

    private static String abbreviate(String s) {
        return s.length() <= 40 ? s : s.substring(0, 20) + "…(" + s.length() + " digits)";
    }

    /** Tensor names in header order. */
    public Set<String> names() {
        return tensors.keySet();
    }

    public boolean contains(String name) {
        return tensors.containsKey(name);
    }

    /**
     * The view of tensor {@code name}, valid until {@link #close()}.
     *
     * @throws SafetensorsFormatException when the file has no such tensor
     */
    public TensorView tensor(String name) {
        TensorView t = tensors.get(name);
        if (t == null) {
            throw new SafetensorsFormatException(path, name, "no such tensor in this file " + sample(names()));
        }
        return t;
    }

    /** All views in header order. */
    public List<TensorView> tensors() {
        return List.copyOf(tensors.values());
    }

    /** The {@code __metadata__} map (empty when absent), in file order. */
    public Map<String, String> metadata() {
        return metadata;
    }

    public Path path() {
        return path;
    }

    /** Offset of the data section in the file: 8 + header length. */
    public long dataStart() {
        return dataStart;
    }

    /** Sum of the tensors' byte sizes. */
    public long tensorBytes() {
        return tensors.values().stream().mapToLong(TensorView::byteSize).sum();
    }

    /** Unmaps the file; every view from it becomes unusable. */
    @Override
    public void close() {
        if (arena.scope().isAlive()) {
            arena.close();
        }
    }

    /** "(N tensors, e.g. "a", "b", "c")": enough to recognise the file without printing a whole model. */
    static String sample(Set<String> names) {
        if (names.isEmpty()) {
            return "(it holds no tensors)";
        }
        return "(" + names.size() + " tensors, e.g. "
                + names.stream().limit(3).map(SafetensorsFormatException::quote).collect(Collectors.joining(", "))
                + ")";
    }
}
