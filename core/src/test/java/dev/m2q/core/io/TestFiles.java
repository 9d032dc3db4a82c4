package dev.m2q.core.io;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/** Hand-made safetensors files, independent of {@link SafetensorsWriter}. */
final class TestFiles {
    private TestFiles() {}

    /** 8-byte LE length of {@code header}, the header's UTF-8 bytes, then {@code data}. */
    static byte[] raw(String header, byte[] data) {
        return raw(header.getBytes(StandardCharsets.UTF_8), data);
    }

    static byte[] raw(byte[] header, byte[] data) {
        ByteBuffer b = ByteBuffer.allocate(8 + header.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(header.length).put(header).put(data);
        return b.array();
    }

    static Path write(Path file, byte[] bytes) {
        try {
            Files.write(file, bytes);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return file;
    }

    static Path write(Path file, String header, byte[] data) {
        return write(file, raw(header, data));
    }
}
