package dev.m2q.core.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.InputException;
import dev.m2q.core.json.Json;
import dev.m2q.core.tensor.Bf16;
import dev.m2q.core.tensor.DType;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Write → read round trips. Every comparison is bit-exact: nothing here computes, it only moves bytes. */
class RoundTripTest {
    @TempDir
    Path dir;

    private static byte[] randomBytes(Random rnd, long n) {
        byte[] b = new byte[(int) n];
        rnd.nextBytes(b);
        return b;
    }

    private static byte[] bytesOf(TensorView t) {
        return t.data().toArray(ValueLayout.JAVA_BYTE);
    }

    private static String sha256(Path file) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(file)));
    }

    @Test
    void everyDtypeShapeAndValueSurvivesTheRoundTrip() throws Exception {
        Random rnd = new Random(1);
        List<long[]> shapes = List.of(new long[] {3, 5}, new long[] {}, new long[] {0, 4}, new long[] {2, 1, 3});
        List<TensorView> in = new ArrayList<>();
        for (DType d : DType.values()) {
            for (int s = 0; s < shapes.size(); s++) {
                long[] shape = shapes.get(s);
                byte[] data = randomBytes(rnd, TensorView.numel(shape) * d.bytes());
                in.add(new TensorView(d + "." + s, d, shape, MemorySegment.ofArray(data)));
            }
        }
        Path file = dir.resolve("all.safetensors");
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put("format", "pt");
        meta.put("note", "é ünïcode \"quoted\"");
        String sha = SafetensorsWriter.writeFile(file, in, meta);
        assertEquals(sha256(file), sha);

        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            assertEquals(in.stream().map(TensorView::name).toList(), List.copyOf(f.names()), "header order");
            assertEquals(meta, f.metadata());
            assertEquals(0, f.dataStart() % 8, "header padded to a multiple of 8");
            for (TensorView want : in) {
                TensorView got = f.tensor(want.name());
                assertEquals(want.dtype(), got.dtype());
                assertArrayEquals(want.shape(), got.shape());
                assertArrayEquals(bytesOf(want), bytesOf(got), want.name());
                assertEquals(file, got.source());
                checkDecoding(got, bytesOf(want));
            }
            assertEquals(1, f.tensor("F32.1").numel(), "scalar shape [] holds one element");
            assertEquals(0, f.tensor("F32.2").numel());
            assertArrayEquals(new float[0], f.tensor("BF16.2").toFloatArray());
        }
    }

    /** Element getters against a decoding of the raw little-endian bytes written here. */
    private static void checkDecoding(TensorView t, byte[] raw) {
        ByteBuffer b = ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < t.numel(); i++) {
            switch (t.dtype()) {
                case BOOL, U8 -> assertEquals(raw[i] & 0xFF, t.getInt(i));
                case I8 -> assertEquals(raw[i], t.getInt(i));
                case I16 -> assertEquals(b.getShort(2 * i), t.getInt(i));
                case I32 -> assertEquals(b.getInt(4 * i), t.getInt(i));
                case I64 -> assertEquals(b.getLong(8 * i), t.getLong(i));
                case F32 ->
                    assertEquals(Float.floatToRawIntBits(b.getFloat(4 * i)), Float.floatToRawIntBits(t.getFloat(i)));
                case F64 -> assertEquals((float) b.getDouble(8 * i), t.getFloat(i), 0f);
                case BF16 -> assertEquals((b.getShort(2 * i) & 0xFFFF) << 16, Float.floatToRawIntBits(t.getFloat(i)));
                case F16 -> assertEquals(Float.float16ToFloat(b.getShort(2 * i)), t.getFloat(i), 0f);
                case F8_E4M3, F8_E5M2 -> {
                    float[] one = new float[1];
                    t.copyFloatsTo(one, 0, i, 1);
                    assertEquals(Float.floatToRawIntBits(one[0]), Float.floatToRawIntBits(t.getFloat(i)));
                }
            }
            if (t.dtype() != DType.I64 && !t.dtype().isFloatingPoint()) {
                assertEquals(t.getInt(i), t.getLong(i));
            }
        }
        if (t.dtype().isFloatingPoint()) {
            float[] all = t.toFloatArray();
            for (int i = 0; i < all.length; i++) {
                assertEquals(Float.floatToRawIntBits(t.getFloat(i)), Float.floatToRawIntBits(all[i]));
            }
        }
    }

    private static List<TensorSpec> modelSpecs() {
        return List.of(
                new TensorSpec("model.embed_tokens.weight", DType.BF16, new long[] {64, 16}),
                new TensorSpec("model.layers.0.self_attn.q_proj.weight", DType.BF16, new long[] {16, 16}),
                new TensorSpec("model.layers.0.self_attn.q_proj.bias", DType.F16, new long[] {16}),
                new TensorSpec("model.layers.0.mlp.up_proj.qweight", DType.I32, new long[] {2, 48}),
                new TensorSpec("model.layers.0.mlp.up_proj.scales", DType.F32, new long[] {1, 48}),
                new TensorSpec("d2t", DType.I64, new long[] {10}),
                new TensorSpec("t2d", DType.BOOL, new long[] {20}),
                new TensorSpec("model.norm.weight", DType.F32, new long[] {16}),
                new TensorSpec("empty", DType.F32, new long[] {0, 4}));
    }

    /** Deterministic content for a spec: written through the typed writers where there is one. */
    private static void writeContent(CheckpointWriter w, TensorSpec s, Random rnd) {
        int n = (int) s.numel();
        switch (s.dtype()) {
            case BF16, F16, F32 -> {
                float[] v = new float[n];
                for (int i = 0; i < n; i++) {
                    v[i] = (float) rnd.nextGaussian();
                }
                w.writeFloats(s.name(), v);
            }
            case I32 -> w.writeInts(s.name(), rnd.ints(n).toArray());
            case I64 -> w.writeLongs(s.name(), rnd.longs(n).toArray());
            default -> w.write(s.name(), MemorySegment.ofArray(randomBytes(rnd, s.byteSize())));
        }
    }

    @Test
    void shardedWriteInAnyOrderReopensThroughTheIndex() throws Exception {
        List<TensorSpec> specs = modelSpecs();
        ShardPlan plan = ShardPlan.of(specs, 1024);
        assertTrue(plan.shards().size() >= 3, "a small cap gives several shards");
        assertEquals(
                "model-00001-of-0000" + plan.shards().size() + ".safetensors",
                plan.shards().getFirst().fileName());
        assertEquals(List.of(specs.getFirst()), plan.shards().getFirst().tensors(), "2048-byte embedding alone");

        Path out = dir.resolve("out");
        List<TensorSpec> order = new ArrayList<>(specs);
        Collections.shuffle(order, new Random(7));
        Map<String, String> hashes;
        Map<String, float[]> floats = new LinkedHashMap<>();
        try (CheckpointWriter w = CheckpointWriter.create(out, plan, CheckpointWriter.PT_METADATA)) {
            for (TensorSpec s : order) {
                writeContent(w, s, new Random(s.name().hashCode()));
            }
            hashes = w.finish();
        }
        try (Stream<Path> files = Files.list(out)) {
            List<String> names =
                    files.map(p -> p.getFileName().toString()).sorted().toList();
            List<String> want = new ArrayList<>(
                    plan.shards().stream().map(ShardPlan.Shard::fileName).toList());
            want.add(Checkpoint.INDEX_FILE);
            assertEquals(want.stream().sorted().toList(), names, "no temporaries left");
            assertEquals(want, List.copyOf(hashes.keySet()));
        }
        for (Map.Entry<String, String> e : hashes.entrySet()) {
            assertEquals(sha256(out.resolve(e.getKey())), e.getValue(), e.getKey());
            assertEquals(e.getValue(), Sha256.ofFile(out.resolve(e.getKey())));
        }
        Map<String, Object> index = Json.parseObject(Files.readString(out.resolve(Checkpoint.INDEX_FILE)));
        assertEquals(Map.of("total_size", plan.totalBytes()), index.get("metadata"));
        @SuppressWarnings("unchecked")
        List<String> keys = List.copyOf(((Map<String, Object>) index.get("weight_map")).keySet());
        assertEquals(keys.stream().sorted().toList(), keys, "weight_map keys sorted");

        try (Checkpoint c = Checkpoint.open(out)) {
            assertEquals(plan.shards().size(), c.files().size());
            assertEquals(plan.totalBytes(), c.totalBytes());
            assertEquals(Map.of("format", "pt"), c.metadata());
            for (TensorSpec s : specs) {
                TensorView t = c.tensor(s.name());
                assertEquals(s, TensorSpec.of(t));
                assertEquals(out.resolve(plan.fileOf(s.name())), c.shardOf(s.name()));
                checkContent(t, new Random(s.name().hashCode()));
            }
            assertFalse(c.contains("lm_head.weight"));
            SafetensorsFormatException e =
                    assertThrows(SafetensorsFormatException.class, () -> c.tensor("lm_head.weight"));
            assertTrue(e.getMessage().contains("\"lm_head.weight\""), e.getMessage());
        }
    }

    /** Reads back what {@link #writeContent} wrote with the same seed; the expected values are rounded here. */
    private static void checkContent(TensorView t, Random rnd) {
        int n = (int) t.numel();
        switch (t.dtype()) {
            case BF16, F16, F32 -> {
                for (int i = 0; i < n; i++) {
                    float v = (float) rnd.nextGaussian();
                    float want =
                            switch (t.dtype()) {
                                case BF16 -> Bf16.round(v);
                                case F16 -> Float.float16ToFloat(Float.floatToFloat16(v));
                                default -> v;
                            };
                    assertEquals(
                            Float.floatToRawIntBits(want),
                            Float.floatToRawIntBits(t.getFloat(i)),
                            t.name() + "[" + i + "]");
                }
            }
            case I32 -> assertArrayEquals(rnd.ints(n).toArray(), t.toIntArray());
            case I64 -> assertArrayEquals(rnd.longs(n).toArray(), t.toLongArray());
            default -> assertArrayEquals(randomBytes(rnd, t.byteSize()), bytesOf(t));
        }
    }

    @Test
    void singleShardIsModelSafetensorsWithoutIndex() throws Exception {
        ShardPlan plan = ShardPlan.single(modelSpecs());
        Path out = dir.resolve("single");
        try (CheckpointWriter w = CheckpointWriter.create(out, plan, Map.of())) {
            for (TensorSpec s : modelSpecs()) {
                writeContent(w, s, new Random(s.name().hashCode()));
            }
            assertEquals(List.of(Checkpoint.SINGLE_FILE), List.copyOf(w.finish().keySet()));
        }
        assertFalse(Files.exists(out.resolve(Checkpoint.INDEX_FILE)));
        try (Checkpoint c = Checkpoint.open(out);
                Checkpoint same = Checkpoint.open(out.resolve(Checkpoint.SINGLE_FILE))) {
            assertEquals(List.copyOf(plan.specs().keySet()), List.copyOf(c.names()));
            assertEquals(c.names(), same.names());
            assertEquals(Map.of(), c.metadata());
            checkContent(
                    c.tensor("model.layers.0.mlp.up_proj.qweight"),
                    new Random("model.layers.0.mlp.up_proj.qweight".hashCode()));
        }
    }

    @Test
    void finishNamesMissingTensorsAndCloseRemovesTemporaries() throws IOException {
        Path out = dir.resolve("partial");
        ShardPlan plan = ShardPlan.of(modelSpecs(), 1024);
        try (CheckpointWriter w = CheckpointWriter.create(out, plan, Map.of())) {
            w.writeFloats("model.norm.weight", new float[16]);
            IllegalStateException e = assertThrows(IllegalStateException.class, w::finish);
            assertTrue(e.getMessage().contains("8 planned tensor(s) not written"), e.getMessage());
            assertTrue(e.getMessage().contains("model.embed_tokens.weight"), e.getMessage());
            assertFalse(e.getMessage().contains("model.norm.weight"), e.getMessage());
            try (Stream<Path> files = Files.list(out)) {
                assertEquals(plan.shards().size(), files.count(), "one hidden temporary per shard while open");
            }
        }
        try (Stream<Path> files = Files.list(out)) {
            assertEquals(List.of(), files.toList(), "close without finish deletes the temporaries");
        }
    }

    @Test
    void writerRefusesWrongInput() throws IOException {
        ShardPlan plan = ShardPlan.single(modelSpecs());
        try (CheckpointWriter w = CheckpointWriter.create(dir.resolve("w"), plan, Map.of())) {
            assertThrows(IllegalArgumentException.class, () -> w.writeFloats("nope", new float[1]));
            assertThrows(IllegalArgumentException.class, () -> w.writeFloats("model.norm.weight", new float[15]));
            assertThrows(IllegalArgumentException.class, () -> w.writeInts("model.norm.weight", new int[16]));
            assertThrows(
                    IllegalArgumentException.class,
                    () -> w.write("model.norm.weight", MemorySegment.ofArray(new byte[63])));
            w.writeFloats("model.norm.weight", new float[16]);
            IllegalStateException dup =
                    assertThrows(IllegalStateException.class, () -> w.writeFloats("model.norm.weight", new float[16]));
            assertTrue(dup.getMessage().contains("written twice"));
            IllegalArgumentException shortStream = assertThrows(IllegalArgumentException.class, () -> {
                try (CheckpointWriter.TensorStream s = w.stream("d2t")) {
                    s.write(MemorySegment.ofArray(new byte[40]));
                }
            });
            assertTrue(shortStream.getMessage().contains("got 40"), shortStream.getMessage());
            w.writeLongs("d2t", new long[10]);
        }
    }

    @Test
    void writerRefusesStaleShardsInTheOutputDirectory() throws IOException {
        Path out = Files.createDirectories(dir.resolve("stale"));
        Files.writeString(out.resolve("model-00001-of-00003.safetensors"), "old");
        InputException e = assertThrows(
                InputException.class, () -> CheckpointWriter.create(out, ShardPlan.single(modelSpecs()), Map.of()));
        assertTrue(e.getMessage().contains("model-00001-of-00003.safetensors"), e.getMessage());
    }
}
