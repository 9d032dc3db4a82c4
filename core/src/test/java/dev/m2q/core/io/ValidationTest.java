package dev.m2q.core.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.tensor.DType;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Malformed headers: each error is a SafetensorsFormatException whose message names the file and the tensor. */
class ValidationTest {
    private static final String NAME = "model.layers.3.mlp.up_proj.weight";

    @TempDir
    Path dir;

    private SafetensorsFormatException openFails(byte[] bytes) {
        Path file = TestFiles.write(dir.resolve("model-00001-of-00002.safetensors"), bytes);
        SafetensorsFormatException e = assertThrows(SafetensorsFormatException.class, () -> SafetensorsFile.open(file)
                .close());
        assertEquals(file, e.file());
        assertTrue(e.getMessage().startsWith(file + ": "), e.getMessage());
        return e;
    }

    /** A header with one tensor entry {@code entry} and {@code dataBytes} zero bytes of data. */
    private SafetensorsFormatException entryFails(String entry, int dataBytes, String expected) {
        SafetensorsFormatException e =
                openFails(TestFiles.raw("{\"" + NAME + "\":" + entry + "}", new byte[dataBytes]));
        assertEquals(Optional.of(NAME), e.tensor());
        assertTrue(e.getMessage().contains("tensor \"" + NAME + "\": "), e.getMessage());
        assertTrue(e.getMessage().contains(expected), e.getMessage());
        return e;
    }

    private static byte[] withLength(long length, byte[] rest) {
        return ByteBuffer.allocate(8 + rest.length)
                .order(ByteOrder.LITTLE_ENDIAN)
                .putLong(length)
                .put(rest)
                .array();
    }

    @Test
    void fileLevelErrors() {
        assertTrue(openFails(new byte[5]).getMessage().contains("5 bytes, shorter than the 8-byte header length"));
        assertTrue(openFails(withLength(0, new byte[8])).getMessage().contains("header length is 0"));
        assertTrue(openFails(withLength(1L << 40, new byte[8])).getMessage().contains("exceeds the limit"));
        assertTrue(openFails(withLength(-2, new byte[8])).getMessage().contains("18446744073709551614"));
        assertTrue(openFails(withLength(100, "{}".getBytes()))
                .getMessage()
                .contains("runs past the end of the file (10 bytes"));
        assertTrue(openFails(TestFiles.raw(new byte[] {'{', '"', (byte) 0xC3, 0x28, '"', ':', '1', '}'}, new byte[0]))
                .getMessage()
                .contains("not valid UTF-8"));
        assertTrue(openFails(TestFiles.raw("{\"a\":", new byte[0])).getMessage().contains("not valid JSON"));
        assertTrue(openFails(TestFiles.raw("[1,2]", new byte[0])).getMessage().contains("not a JSON object"));
        assertTrue(openFails(TestFiles.raw("{\"__metadata__\":[]}", new byte[0]))
                .getMessage()
                .contains("__metadata__ is an array"));
        assertTrue(openFails(TestFiles.raw("{\"__metadata__\":{\"format\":1}}", new byte[0]))
                .getMessage()
                .contains("__metadata__ value of \"format\" is a number, not a string"));
    }

    @Test
    void entryErrorsNameTheTensor() {
        entryFails("[1]", 0, "entry is an array, not an object");
        entryFails("{\"dtype\":\"BF16\",\"shape\":[2]}", 4, "missing [data_offsets]");
        entryFails("{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4],\"x\":1}", 4, "unexpected [\"x\"]");
        entryFails("{\"dtype\":7,\"shape\":[2],\"data_offsets\":[0,4]}", 4, "dtype is a number, not a string");
        entryFails("{\"dtype\":\"F4\",\"shape\":[2],\"data_offsets\":[0,4]}", 4, "unknown dtype \"F4\" (known: BOOL");
        entryFails("{\"dtype\":\"BF16\",\"shape\":[-2],\"data_offsets\":[0,4]}", 4, "shape[0] = -2 is negative");
        entryFails(
                "{\"dtype\":\"BF16\",\"shape\":[2.0],\"data_offsets\":[0,4]}",
                4,
                "shape[0] is a number, not an integer");
        entryFails("{\"dtype\":\"BF16\",\"shape\":\"2\",\"data_offsets\":[0,4]}", 4, "shape is a string, not an array");
        entryFails("{\"dtype\":\"BF16\",\"shape\":[99999999999999999999],\"data_offsets\":[0,4]}", 4, "out of range");
        entryFails(
                "{\"dtype\":\"BF16\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}",
                4,
                "more elements than a long");
        entryFails(
                "{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4,8]}",
                8,
                "data_offsets has 3 elements, expected 2");
        entryFails(
                "{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[4,0]}", 4, "data_offsets [4, 0] begin after end");
        entryFails(
                "{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[0,4]}",
                4,
                "BF16 [3] is 6 bytes but data_offsets [0, 4] span 4");
        entryFails(
                "{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[4,8]}",
                6,
                "data_offsets [4, 8] end past the data section (6 bytes");
    }

    @Test
    void overlappingTensorsAreNamedBoth() {
        String header = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}";
        SafetensorsFormatException e = openFails(TestFiles.raw(header, new byte[12]));
        assertEquals(Optional.of("b"), e.tensor());
        assertTrue(e.getMessage().contains("overlap those of tensor \"a\" [0, 8]"), e.getMessage());
    }

    @Test
    void emptyTensorsAndHolesAreAccepted() throws IOException {
        String header = "{\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
                + "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                + "\"b\":{\"dtype\":\"I8\",\"shape\":[],\"data_offsets\":[6,7]}}      ";
        Path file = TestFiles.write(
                dir.resolve("ok.safetensors"), header, new byte[] {0, 0, (byte) 0x80, 0x3f, 9, 9, -5, 9});
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            assertEquals(1f, f.tensor("a").getFloat(0));
            assertEquals(-5, f.tensor("b").getInt(0));
            assertEquals(0, f.tensor("e").numel());
        }
    }

    @Test
    void viewChecksNameTheFileAndTensor() throws IOException {
        Path file = TestFiles.write(
                dir.resolve("m.safetensors"),
                "{\"" + NAME + "\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,12]}}",
                new byte[12]);
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            TensorView t = f.tensor(NAME);
            assertEquals(t, t.requireShape(2, 3));
            SafetensorsFormatException shape =
                    assertThrows(SafetensorsFormatException.class, () -> t.requireShape(3, 2));
            assertEquals(
                    file + ": tensor \"" + NAME
                            + "\": shape [2, 3], expected [3, 2] (does the checkpoint match config.json?)",
                    shape.getMessage());
            SafetensorsFormatException dtype =
                    assertThrows(SafetensorsFormatException.class, () -> t.requireDtype(DType.F16, DType.F32));
            assertTrue(dtype.getMessage().endsWith("dtype BF16, expected one of F16, F32"), dtype.getMessage());
            SafetensorsFormatException asInt = assertThrows(SafetensorsFormatException.class, () -> t.getInt(0));
            assertTrue(asInt.getMessage().contains(NAME), asInt.getMessage());
            SafetensorsFormatException missing =
                    assertThrows(SafetensorsFormatException.class, () -> f.tensor("lm_head.weight"));
            assertTrue(
                    missing.getMessage()
                            .contains("\"lm_head.weight\": no such tensor in this file (1 tensors, e.g. \"" + NAME
                                    + "\")"),
                    missing.getMessage());
            assertThrows(IndexOutOfBoundsException.class, () -> t.getFloat(6));
        }
    }

    /** A 2^31-element tensor in a sparse file: mapped without trouble, but refused as one Java array. */
    @Test
    void tooLargeForOneArrayIsAClearError() throws IOException {
        long n = 1L << 31;
        byte[] head = TestFiles.raw(
                "{\"big\":{\"dtype\":\"F8_E4M3\",\"shape\":[" + n + "],\"data_offsets\":[0," + n + "]}}", new byte[0]);
        Path file = TestFiles.write(dir.resolve("sparse.safetensors"), head);
        try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw")) {
            raf.setLength(head.length + n);
        }
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            TensorView big = f.tensor("big");
            assertEquals(0f, big.getFloat(n - 1));
            SafetensorsFormatException e = assertThrows(SafetensorsFormatException.class, big::toFloatArray);
            assertTrue(e.getMessage().contains("2147483648 elements do not fit one Java array"), e.getMessage());
            float[] row = new float[4];
            big.copyFloatsTo(row, 0, n - 4, 4);
            assertEquals(0f, row[3]);
        }
    }
}
