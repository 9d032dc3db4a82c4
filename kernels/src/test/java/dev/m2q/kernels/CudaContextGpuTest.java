package dev.m2q.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The runtime on a real GPU (./mvnw verify -Pgpu): the probe kernel, bit-exact copies in every direction, and
 * errors that name the kernel. Every comparison is exact: copies and a fill move bits, no arithmetic happens.
 */
@Tag("gpu")
class CudaContextGpuTest {
    static CudaContext ctx;

    @BeforeAll
    static void open() {
        assertEquals(Optional.empty(), CudaContext.unavailableReason(), "CUDA must be usable where gpu tests run");
        ctx = CudaContext.get();
        assertSame(ctx, CudaContext.get());
    }

    @Test
    void describesTheDevice() {
        String d = ctx.describe();
        assertTrue(
                d.matches(
                        ".+ \\(sm_\\d+, \\d+\\.\\d GiB\\), driver CUDA \\d+\\.\\d+, kernels built with CUDA \\d+\\.\\d+"),
                d);
        assertTrue(ctx.computeCapability() >= 80, d);
        long free = ctx.freeMemory();
        assertTrue(free > 0 && free <= ctx.totalMemory(), free + " of " + ctx.totalMemory());
    }

    @Test
    void fillWritesExactlyTheFirstNElements() {
        int n = 1_000_003; // not a multiple of the block
        int pad = 77;
        float[] sentinel = new float[n + pad];
        Arrays.fill(sentinel, -1f);
        Kernel fill = ctx.kernel("m2q_fill_f32");
        assertSame(fill, ctx.kernel("m2q_fill_f32"), "kernels are cached");
        try (DeviceBuffer out = ctx.upload(sentinel, 0, n + pad)) {
            fill.launch((n + 255) / 256, 1, 1, 256, 1, 1, 0, out, 3.25f, n);
            float[] got = new float[n + pad];
            ctx.download(out, 0, got, 0, n + pad);
            for (int i = 0; i < n + pad; i++) {
                assertEquals(i < n ? 3.25f : -1f, got[i], "element " + i);
            }
            float ms = ctx.elapsedMillis(() -> fill.launch((n + 255) / 256, 1, 1, 256, 1, 1, 0, out, 0f, n));
            assertTrue(ms >= 0, ms + " ms");
            // A pointer into the buffer: elements 10 .. 14 only.
            fill.launch(1, 1, 1, 32, 1, 1, 0, out.ptr().withByteOffset(4L * 10), 7f, 5);
            float[] head = new float[20];
            ctx.download(out, 0, head, 0, head.length);
            for (int i = 0; i < head.length; i++) {
                assertEquals(i >= 10 && i < 15 ? 7f : 0f, head[i], "element " + i);
            }
        }
    }

    @Test
    void arraysRoundTripBitForBit() {
        SplittableRandom r = new SplittableRandom(42);
        float[] f = new float[4099];
        for (int i = 0; i < f.length; i++) {
            f[i] = Float.intBitsToFloat(r.nextInt()); // every bit pattern, NaNs and subnormals included
        }
        int[] ints = r.ints(3001).toArray();
        short[] bf16 = new short[2 * 1501];
        for (int i = 0; i < bf16.length; i++) {
            bf16[i] = (short) r.nextInt();
        }
        try (DeviceBuffer fb = ctx.upload(f, 3, 4000);
                DeviceBuffer ib = ctx.upload(ints, 0, ints.length);
                DeviceBuffer sb = ctx.upload(bf16, 0, bf16.length)) {
            assertEquals(16_000, fb.bytes());
            int[] fBits = new int[4000];
            ctx.download(fb, 0, fBits, 0, 4000);
            for (int i = 0; i < 4000; i++) {
                assertEquals(Float.floatToRawIntBits(f[3 + i]), fBits[i], "float " + i);
            }
            float[] tail = new float[10];
            ctx.download(fb, 4L * 3990, tail, 5, 5);
            for (int i = 0; i < 5; i++) {
                assertEquals(Float.floatToRawIntBits(f[3 + 3990 + i]), Float.floatToRawIntBits(tail[5 + i]));
            }
            int[] gotInts = new int[ints.length];
            ctx.download(ib, 0, gotInts, 0, ints.length);
            assertArrayEquals(ints, gotInts);
            int[] pairs = new int[bf16.length / 2];
            ctx.download(sb, 0, pairs, 0, pairs.length);
            for (int i = 0; i < pairs.length; i++) {
                assertEquals((bf16[2 * i] & 0xFFFF) | (bf16[2 * i + 1] << 16), pairs[i], "bf16 pair " + i);
            }
            ctx.uploadInto(fb, 8, new float[] {9f, 1.5f, 2.5f}, 1, 2);
            float[] head = new float[4];
            ctx.download(fb, 0, head, 0, 4);
            assertEquals(List.of(f[3], f[4], 1.5f, 2.5f), List.of(head[0], head[1], head[2], head[3]));
            ctx.copy(ib, 4, fb, 8, 8);
            ctx.download(ib, 0, gotInts, 0, 4);
            assertArrayEquals(
                    new int[] {ints[0], Float.floatToRawIntBits(1.5f), Float.floatToRawIntBits(2.5f), ints[3]},
                    Arrays.copyOf(gotInts, 4));
            ctx.zero(ib);
            ctx.download(ib, 0, gotInts, 0, ints.length);
            assertArrayEquals(new int[ints.length], gotInts);
            assertThrows(
                    IndexOutOfBoundsException.class, () -> ctx.download(ib, 4, new int[ints.length], 0, ints.length));
        }
    }

    @Test
    void segmentsRoundTripBitForBit() {
        SplittableRandom r = new SplittableRandom(7);
        // 40 MiB + 12 bytes: the heap copy goes through several 16 MiB staging chunks, the last one partial.
        byte[] heap = new byte[(40 << 20) + 12];
        for (int i = 0; i < heap.length; i++) {
            heap[i] = (byte) r.nextInt();
        }
        double[] doubles = r.doubles(513).toArray();
        try (Arena arena = Arena.ofConfined();
                DeviceBuffer h = ctx.upload(MemorySegment.ofArray(heap));
                DeviceBuffer d = ctx.upload(MemorySegment.ofArray(doubles))) {
            MemorySegment nat = arena.allocate(3 * 4096 + 8);
            nat.copyFrom(MemorySegment.ofArray(heap).asSlice(100, nat.byteSize()));
            try (DeviceBuffer nb = ctx.upload(nat.asReadOnly())) {
                assertEquals(heap.length, h.bytes());
                int[] got = new int[heap.length / 4];
                ctx.download(h, 0, got, 0, got.length);
                int[] want = new int[got.length];
                ByteBuffer.wrap(heap)
                        .order(ByteOrder.LITTLE_ENDIAN)
                        .asIntBuffer()
                        .get(want);
                assertArrayEquals(want, got);
                int[] gotNative = new int[(int) nat.byteSize() / 4];
                ctx.download(nb, 0, gotNative, 0, gotNative.length);
                assertArrayEquals(nat.toArray(ValueLayout.JAVA_INT_UNALIGNED), gotNative);
                double[] gotDoubles = new double[doubles.length];
                ctx.download(d, 0, gotDoubles, 0, doubles.length);
                assertArrayEquals(doubles, gotDoubles);
            }
        }
        try (DeviceBuffer empty = ctx.upload(new float[0], 0, 0)) {
            assertEquals(0, empty.bytes());
        }
    }

    @Test
    void closingTwiceFreesOnceAndAClosedBufferCannotBeUsed() {
        DeviceBuffer b = ctx.alloc(1 << 20);
        b.close();
        b.close();
        assertThrows(IllegalStateException.class, b::ptr);
        assertThrows(IllegalStateException.class, () -> ctx.zero(b));
        assertThrows(
                IllegalStateException.class, () -> ctx.kernel("m2q_fill_f32").launch(1, 1, 1, 32, 1, 1, 0, b, 1f, 32));
    }

    @Test
    void launchErrorsNameTheKernelAndLeaveTheContextUsable() {
        Kernel fill = ctx.kernel("m2q_fill_f32");
        try (DeviceBuffer out = ctx.alloc(4L * 4096)) {
            CudaException tooWide =
                    assertThrows(CudaException.class, () -> fill.launch(1, 1, 1, 2048, 1, 1, 0, out, 1f, 4096));
            assertTrue(tooWide.getMessage().startsWith("m2q_fill_f32: cuLaunchKernel"), tooWide.getMessage());
            assertTrue(tooWide.getMessage().contains("CUDA_ERROR_INVALID_VALUE"), tooWide.getMessage());
            // More than 48 KiB of dynamic shared memory needs the attribute first.
            int shared = 64 << 10;
            CudaException noAttr =
                    assertThrows(CudaException.class, () -> fill.launch(16, 1, 1, 256, 1, 1, shared, out, 1f, 4096));
            assertTrue(noAttr.getMessage().startsWith("m2q_fill_f32: "), noAttr.getMessage());
            fill.setMaxDynamicShared(shared);
            fill.launch(16, 1, 1, 256, 1, 1, shared, out, 2f, 4096);
            float[] got = new float[4096];
            ctx.download(out, 0, got, 0, got.length);
            float[] want = new float[4096];
            Arrays.fill(want, 2f);
            assertArrayEquals(want, got);
            assertThrows(IllegalArgumentException.class, () -> fill.launch(1, 1, 1, 32, 1, 1, 0, out, "1", 32));
        }
        CudaException unknown = assertThrows(CudaException.class, () -> ctx.kernel("m2q_no_such_kernel"));
        assertTrue(unknown.getMessage().startsWith("no kernel named m2q_no_such_kernel in "), unknown.getMessage());
    }

    @Test
    void aBadPointerFaultIsBlamedOnItsKernelAndKillsTheContext() throws IOException, InterruptedException {
        Process p = new ProcessBuilder(
                        Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                        "--enable-native-access=ALL-UNNAMED",
                        "-cp",
                        System.getProperty("java.class.path"),
                        BadPointerLaunch.class.getName())
                .redirectErrorStream(true)
                .start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), out);
        assertEquals(0, p.exitValue(), out);
        assertTrue(out.contains("launch: m2q_fill_f32: CUDA_ERROR_ILLEGAL_ADDRESS"), out);
        assertTrue(
                out.contains("then: the CUDA context is unusable after an earlier error (m2q_fill_f32:"
                        + " CUDA_ERROR_ILLEGAL_ADDRESS); restart the process"),
                out);
    }
}
