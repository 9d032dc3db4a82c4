package dev.m2q.core.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.m2q.core.json.Json;
import dev.m2q.core.tensor.DType;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Seeded fuzzing of the reader: corrupted and truncated variants of one valid small file must either open with
 * consistent, fully readable tensors or fail with a SafetensorsFormatException; any other throwable is a bug.
 * 10 000 cases run in about 5 s on 2 cores.
 */
class FuzzTest {
    private static final int CASES = 10_000;
    private static final long SEED = 0x5AFE7E45L;
    private static final String DEEP = "@@DEEP@@";

    @TempDir
    Path dir;

    /** The valid base: six tensors of assorted dtypes and shapes (scalar and empty included), with metadata. */
    private static Map<String, Object> baseHeader() {
        Map<String, Object> h = new LinkedHashMap<>();
        h.put("__metadata__", new LinkedHashMap<>(Map.of("format", "pt")));
        Object[][] tensors = {
            {"w", "BF16", List.of(2L, 3L)},
            {"ids", "I32", List.of(4L)},
            {"kv", "F8_E4M3", List.of(5L)},
            {"n", "I64", List.of()},
            {"none", "U8", List.of(0L, 2L)},
            {"e", "F8_E5M2", List.of(3L)},
        };
        long off = 0;
        for (Object[] t : tensors) {
            @SuppressWarnings("unchecked")
            List<Long> shape = (List<Long>) t[2];
            long bytes = shape.stream().reduce(1L, (a, b) -> a * b)
                    * DType.fromSafetensorsName((String) t[1]).orElseThrow().bytes();
            Map<String, Object> e = new LinkedHashMap<>();
            e.put("dtype", t[1]);
            e.put("shape", new ArrayList<Object>(shape));
            e.put("data_offsets", new ArrayList<Object>(List.of(off, off + bytes)));
            h.put((String) t[0], e);
            off += bytes;
        }
        return h;
    }

    private static long dataBytes(Map<String, Object> header) {
        return header.values().stream()
                .filter(v -> v instanceof Map<?, ?> m && m.containsKey("data_offsets"))
                .mapToLong(v -> (Long) ((List<?>) ((Map<?, ?>) v).get("data_offsets")).get(1))
                .max()
                .orElse(0);
    }

    @Test
    void corruptedFilesOpenConsistentlyOrFailWithAFormatError() throws Exception {
        Random rnd = new Random(SEED);
        byte[] data = new byte[(int) dataBytes(baseHeader())];
        rnd.nextBytes(data);
        byte[] base = TestFiles.raw(Json.write(baseHeader()), data);
        checkOpens(TestFiles.write(dir.resolve("base.safetensors"), base), "the unmutated base");

        int opened = 0;
        int rejected = 0;
        for (int i = 0; i < CASES; i++) {
            StringBuilder what = new StringBuilder("case " + i + ":");
            byte[] bytes = mutate(rnd, base, data, what);
            // A new file per case, deleted after: rewriting one file in place truncates it each time, which costs
            // ~2 ms on ext4 (40 times a new file) and would make the run 5 times longer.
            Path file = TestFiles.write(dir.resolve("case-" + i + ".safetensors"), bytes);
            try {
                checkOpens(file, what.toString());
                opened++;
            } catch (SafetensorsFormatException e) {
                assertTrue(e.getMessage().startsWith(file + ": "), what + " message lacks the file: " + e.getMessage());
                rejected++;
            } catch (Throwable t) {
                fail(what + " threw " + t, t);
            } finally {
                Files.delete(file);
            }
        }
        assertEquals(CASES, opened + rejected);
        assertTrue(opened > 250 && rejected > 5000, "mutations should both pass and fail: " + opened + " opened");
    }

    /** Opens, then reads every element of every tensor through the getter of its dtype. */
    private static void checkOpens(Path file, String what) throws Exception {
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            long total = 0;
            for (String name : f.names()) {
                TensorView t = f.tensor(name);
                assertEquals(TensorView.numel(t.shape()) * t.dtype().bytes(), t.byteSize(), what);
                total += t.byteSize();
                if (t.dtype().isFloatingPoint()) {
                    float[] all = t.toFloatArray();
                    for (int i = 0; i < all.length; i++) {
                        assertEquals(Float.floatToRawIntBits(all[i]), Float.floatToRawIntBits(t.getFloat(i)), what);
                    }
                } else {
                    long[] all = t.toLongArray();
                    for (int i = 0; i < all.length; i++) {
                        assertEquals(all[i], t.getLong(i), what);
                    }
                }
            }
            assertTrue(total <= Files.size(file) - f.dataStart(), what + ": tensors exceed the data section");
        }
    }

    private static byte[] mutate(Random rnd, byte[] base, byte[] data, StringBuilder what) {
        int kind = rnd.nextInt(10);
        return switch (kind) {
            case 0 -> flipHeaderBytes(rnd, base, what);
            case 1 -> {
                int cut = rnd.nextInt(base.length);
                what.append(" truncated to ").append(cut);
                yield Arrays.copyOf(base, cut);
            }
            case 2 -> headerLengthField(rnd, base, what);
            case 3 -> invalidUtf8(rnd, base, what);
            default -> {
                Map<String, Object> h = baseHeader();
                int n = 1 + rnd.nextInt(3);
                for (int k = 0; k < n; k++) {
                    mutateJson(rnd, h, what);
                }
                String text = Json.write(h);
                int depth = rnd.nextBoolean() ? 100 : 300;
                text = text.replace("\"" + DEEP + "\"", "[".repeat(depth) + "]".repeat(depth));
                if (rnd.nextInt(8) == 0) {
                    text += " ".repeat(rnd.nextInt(9));
                }
                yield TestFiles.raw(text, data);
            }
        };
    }

    private static byte[] flipHeaderBytes(Random rnd, byte[] base, StringBuilder what) {
        byte[] b = base.clone();
        int headerEnd =
                (int) ByteBuffer.wrap(base).order(ByteOrder.LITTLE_ENDIAN).getLong(0) + 8;
        for (int k = rnd.nextInt(4); k >= 0; k--) {
            int at = rnd.nextInt(headerEnd);
            b[at] = (byte) rnd.nextInt(256);
            what.append(" byte ").append(at).append('=').append(b[at] & 0xFF);
        }
        return b;
    }

    private static byte[] headerLengthField(Random rnd, byte[] base, StringBuilder what) {
        long len = ByteBuffer.wrap(base).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        long v =
                switch (rnd.nextInt(6)) {
                    case 0 -> 0;
                    case 1 -> rnd.nextLong();
                    case 2 -> Long.MIN_VALUE | rnd.nextLong();
                    case 3 -> len + rnd.nextInt(17) - 8;
                    case 4 -> base.length - 8 + rnd.nextInt(3);
                    default -> SafetensorsFile.MAX_HEADER_BYTES + rnd.nextInt(3) - 1;
                };
        what.append(" header length ").append(Long.toUnsignedString(v));
        byte[] b = base.clone();
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(0, v);
        return b;
    }

    private static byte[] invalidUtf8(Random rnd, byte[] base, StringBuilder what) {
        byte[][] bad = {
            {(byte) 0xC3, 0x28},
            {(byte) 0xFF},
            {(byte) 0xED, (byte) 0xA0, (byte) 0x80},
            {(byte) 0xE2, (byte) 0x82},
            {(byte) 0x80}
        };
        byte[] ins = bad[rnd.nextInt(bad.length)];
        int headerLen =
                (int) ByteBuffer.wrap(base).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        int at = 8 + 1 + rnd.nextInt(headerLen - 2);
        what.append(" invalid UTF-8 ")
                .append(Arrays.toString(ins))
                .append(" at ")
                .append(at);
        byte[] b = new byte[base.length + ins.length];
        System.arraycopy(base, 0, b, 0, at);
        System.arraycopy(ins, 0, b, at, ins.length);
        System.arraycopy(base, at, b, at + ins.length, base.length - at);
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(0, headerLen + ins.length);
        return b;
    }

    private static final Object[] ODD_VALUES = {
        -1L,
        0L,
        1L,
        3L,
        1L << 40,
        Long.MAX_VALUE,
        BigInteger.TWO.pow(70),
        2.0,
        1e300,
        "3",
        null,
        true,
        List.of(),
        Map.of(),
        DEEP
    };

    @SuppressWarnings("unchecked")
    private static void mutateJson(Random rnd, Map<String, Object> h, StringBuilder what) {
        List<String> names = new ArrayList<>(h.keySet());
        names.remove("__metadata__");
        if (names.isEmpty()) {
            what.append(" (no tensors left)");
            return;
        }
        String name = names.get(rnd.nextInt(names.size()));
        Object entryObj = h.get(name);
        if (!(entryObj instanceof Map<?, ?>)) {
            h.put(name, entryObj == null ? Map.of() : null);
            what.append(" ").append(name).append(" toggled");
            return;
        }
        Map<String, Object> entry = new LinkedHashMap<>((Map<String, Object>) entryObj);
        h.put(name, entry);
        Object odd = ODD_VALUES[rnd.nextInt(ODD_VALUES.length)];
        switch (rnd.nextInt(12)) {
            case 0 -> {
                String[] dtypes = {"F4", "", "bf16", "Q4_0", "U16", "F8_E8M0", "BF16", "F16", "I16", "U8", "BOOL", "I8"
                };
                String d = dtypes[rnd.nextInt(dtypes.length)];
                entry.put("dtype", d);
                what.append(" ").append(name).append(".dtype=").append(d);
            }
            case 1 -> {
                List<Object> shape = shapeOf(entry);
                if (shape.isEmpty() || rnd.nextBoolean()) {
                    shape.add(odd);
                } else {
                    shape.set(rnd.nextInt(shape.size()), odd);
                }
                what.append(" ").append(name).append(".shape=").append(shape);
            }
            case 2 -> {
                List<Object> shape = shapeOf(entry);
                if (!shape.isEmpty()) {
                    shape.removeLast();
                }
                shape.add(0, 1L);
                what.append(" ").append(name).append(".shape=").append(shape);
            }
            case 3 -> {
                List<Object> off = offsetsOf(entry);
                long shift = rnd.nextInt(9) - 4;
                off.replaceAll(o -> o instanceof Long l ? l + shift : o);
                what.append(" ").append(name).append(".data_offsets shifted ").append(shift);
            }
            case 4 -> {
                String other = names.get(rnd.nextInt(names.size()));
                if (h.get(other) instanceof Map<?, ?> o && o.get("data_offsets") instanceof List<?> l) {
                    entry.put("data_offsets", new ArrayList<Object>(l));
                }
                what.append(" ").append(name).append(".data_offsets=those of ").append(other);
            }
            case 5 -> {
                List<Object> off = offsetsOf(entry);
                if (rnd.nextBoolean() && !off.isEmpty()) {
                    off.set(rnd.nextInt(off.size()), odd);
                } else if (rnd.nextBoolean()) {
                    off.add(odd);
                } else if (!off.isEmpty()) {
                    off.removeFirst();
                }
                what.append(" ").append(name).append(".data_offsets=").append(off);
            }
            case 6 -> {
                String key = List.of("dtype", "shape", "data_offsets").get(rnd.nextInt(3));
                entry.remove(key);
                what.append(" ").append(name).append(" lost ").append(key);
            }
            case 7 -> {
                entry.put("extra", odd);
                what.append(" ").append(name).append(".extra added");
            }
            case 8 -> {
                h.put(name, odd);
                what.append(" ").append(name).append("=").append(odd);
            }
            case 9 -> {
                String key = List.of("dtype", "shape", "data_offsets").get(rnd.nextInt(3));
                entry.put(key, odd);
                what.append(" ")
                        .append(name)
                        .append(".")
                        .append(key)
                        .append("=")
                        .append(odd);
            }
            case 10 -> {
                Object meta =
                        switch (rnd.nextInt(4)) {
                            case 0 -> odd;
                            case 1 -> new LinkedHashMap<>(Map.of("format", odd == null ? "pt" : odd));
                            case 2 -> new LinkedHashMap<>(Map.of("format", "pt", "note", "ünïcode \u0001"));
                            default -> new LinkedHashMap<>();
                        };
                h.put("__metadata__", meta);
                what.append(" __metadata__=").append(meta);
            }
            default -> {
                Object e = h.remove(name);
                String renamed = rnd.nextBoolean() ? name + "\u00e9\n" : "";
                h.put(renamed, e);
                what.append(" renamed ").append(name);
            }
        }
    }

    @SuppressWarnings("unchecked")
    private static List<Object> shapeOf(Map<String, Object> entry) {
        if (!(entry.get("shape") instanceof List<?> l)) {
            entry.put("shape", new ArrayList<>());
            return (List<Object>) entry.get("shape");
        }
        List<Object> copy = new ArrayList<>(l);
        entry.put("shape", copy);
        return copy;
    }

    @SuppressWarnings("unchecked")
    private static List<Object> offsetsOf(Map<String, Object> entry) {
        if (!(entry.get("data_offsets") instanceof List<?> l)) {
            entry.put("data_offsets", new ArrayList<>());
            return (List<Object>) entry.get("data_offsets");
        }
        List<Object> copy = new ArrayList<>(l);
        entry.put("data_offsets", copy);
        return copy;
    }
}
