package dev.m2q.kernels;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

/**
 * A reader of the fatbin container that {@code nvcc -fatbin} writes, enough to list what code it holds (cuobjdump
 * --list-elf --list-ptx, without the toolkit). Little-endian throughout:
 *
 * <pre>
 * container header, 16 bytes: u32 magic 0xBA55ED50 | u16 version 1 | u16 header size | u64 size of the entries
 * entry header, its own size (≥ 32, 64 or 80 seen): u16 kind (1 PTX, 2 ELF) | u16 | u32 header size
 *     | u64 payload size | … | u32 arch at offset 28 (80 for sm_80 / compute_80) | … | u64 at 56, when the
 *     header has it: the uncompressed size of a compressed payload, else 0
 * payload: the cubin (an ELF, e_machine 190 = EM_CUDA) or the PTX text, either possibly compressed
 * </pre>
 *
 * The walk must land exactly on the end of the file, so a misread size cannot go unnoticed.
 */
record Fatbin(List<Entry> entries) {
    static final int MAGIC = 0xBA55ED50;
    static final int KIND_PTX = 1;
    static final int KIND_ELF = 2;
    static final int EM_CUDA = 190;

    /** One code object: "sm_90" (ELF) or "compute_90" (PTX). */
    record Entry(int kind, int arch, boolean compressed, long payloadOffset, long payloadSize) {
        String target() {
            return (kind == KIND_ELF ? "sm_" : "compute_") + arch;
        }
    }

    /** @throws IllegalArgumentException when the bytes are not a well-formed fatbin container */
    static Fatbin parse(byte[] bytes) {
        ByteBuffer b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        List<Entry> entries = new ArrayList<>();
        long pos = 0;
        if (bytes.length < 16) {
            throw new IllegalArgumentException(
                    "a fatbin has at least a 16-byte header; got " + bytes.length + " bytes");
        }
        while (pos < bytes.length) {
            need(bytes, pos, 16, "container header");
            int magic = b.getInt((int) pos);
            if (magic != MAGIC) {
                throw new IllegalArgumentException(String.format("bad magic 0x%08X at %d", magic, pos));
            }
            int version = Short.toUnsignedInt(b.getShort((int) pos + 4));
            int headerSize = Short.toUnsignedInt(b.getShort((int) pos + 6));
            long fatSize = b.getLong((int) pos + 8);
            if (version != 1 || headerSize < 16) {
                throw new IllegalArgumentException("container at " + pos + ": version " + version + ", header "
                        + headerSize + " bytes (expected 1 and ≥ 16)");
            }
            long end = pos + headerSize + fatSize;
            if (fatSize < 0 || end > bytes.length) {
                throw new IllegalArgumentException("container at " + pos + " claims " + fatSize + " bytes of entries;"
                        + " the file has " + (bytes.length - pos - headerSize));
            }
            long e = pos + headerSize;
            while (e < end) {
                need(bytes, e, 32, "entry header");
                int kind = Short.toUnsignedInt(b.getShort((int) e));
                int entryHeader = b.getInt((int) e + 4);
                long payload = b.getLong((int) e + 8);
                int arch = b.getInt((int) e + 28);
                if ((kind != KIND_PTX && kind != KIND_ELF) || entryHeader < 32 || payload < 0) {
                    throw new IllegalArgumentException("entry at " + e + ": kind " + kind + ", header " + entryHeader
                            + " bytes, payload " + payload + " (expected kind 1 or 2, a header ≥ 32 bytes)");
                }
                if (e + entryHeader + payload > end) {
                    throw new IllegalArgumentException("entry at " + e + " runs past its container's end " + end);
                }
                boolean compressed = entryHeader >= 64 && b.getLong((int) e + 56) != 0;
                entries.add(new Entry(kind, arch, compressed, e + entryHeader, payload));
                e += entryHeader + payload;
            }
            if (e != end) {
                throw new IllegalArgumentException("entries end at " + e + ", their container at " + end);
            }
            pos = end;
        }
        return new Fatbin(entries);
    }

    /** The ELF's e_machine, read from the uncompressed payload of an ELF entry. */
    static int elfMachine(byte[] bytes, Entry e) {
        need(bytes, e.payloadOffset(), 20, "ELF header");
        int o = (int) e.payloadOffset();
        if (bytes[o] != 0x7f || bytes[o + 1] != 'E' || bytes[o + 2] != 'L' || bytes[o + 3] != 'F') {
            throw new IllegalArgumentException("the " + e.target() + " payload is not an ELF");
        }
        return Short.toUnsignedInt(
                ByteBuffer.wrap(bytes, o + 18, 2).order(ByteOrder.LITTLE_ENDIAN).getShort());
    }

    List<String> targets() {
        return entries.stream().map(Entry::target).toList();
    }

    private static void need(byte[] bytes, long pos, int n, String what) {
        if (pos + n > bytes.length) {
            throw new IllegalArgumentException(
                    what + " at " + pos + " is cut off: the file has " + bytes.length + " bytes");
        }
    }
}
