package dev.m2q.core.kernels;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The W4A16 matmul of {@link VectorKernels}: y = x·Wᵀ computed straight from the packed GPTQ words, never from
 * a dequantized W. Lanes are output channels: row r of qweight [K/8, N] is contiguous over n, so one IntVector
 * load brings 8 input channels × {@code V} output channels, decoded in registers. Each y[t, n] follows the
 * sequence defined in {@link Kernels#matmul} exactly (per group: one in-order FMA chain over the group's input
 * channels, then one FMA with the scale), so the results equal {@link ScalarKernels}' bit for bit.
 *
 * <p>Two paths, both split over N (chunks of {@code V} channels) with {@link Parallel}, so batch 1 uses every
 * core:
 *
 * <ul>
 *   <li><b>One token, g_idx = k/G</b> ({@link #singleToken}): groups outermost, so qweight is read a group's
 *       G/8 rows at a time, each row sequentially over the thread's N range; within a group a register tile of
 *       {@link #TILE} vectors holds the FMA chains. Nibble j of a word is decoded as {@code word & (0xF << 4j)}
 *       converted to float, which is q·2^{4j} exactly, and multiplied by x·2^{−4j} (scaled once per call):
 *       powers of two, so the product equals q·x and the FMA rounds the same; nibble 7 is {@code word >>> 28}
 *       (its mask would reach the sign bit) times x unscaled. This needs x·2^{−24} to stay normal, so an x with
 *       some 0 &lt; |x| &lt; 2^{−102} takes the buffered path instead.
 *   <li><b>Buffered</b> ({@link #buffered}; several tokens, or a non-monotonic g_idx = act-order with dynamic
 *       groups): per group and {@code V}-channel chunk, the group's codes are decoded once into a small L1
 *       buffer (q as float, in member order, one word load per input channel: a permuted g_idx only changes
 *       which words are read), then reused by every token of a {@link #TOKEN_BLOCK}-token block, 4 tokens at
 *       a time.
 * </ul>
 *
 * Ragged N: the last N mod {@code V} channels are computed by the scalar twin's own loop.
 */
final class VectorW4 {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, F.vectorShape());
    private static final int V = F.length();
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    /** Vectors of output channels per register tile of the one-token path. */
    private static final int TILE = 4;
    /** Tokens per block of the buffered path: their y rows and x group slices stay in L1/L2. */
    private static final int TOKEN_BLOCK = 64;
    /** Rows of x up to which a W4 product with contiguous groups decodes each word once for all rows. */
    static final int MULTI_ROWS = 8;
    /** The smallest nonzero |x| that x·2^{−24} keeps normal (exact). */
    private static final float PRESCALE_MIN = Float.MIN_NORMAL * 0x1p24f;

    private VectorW4() {}

    static void matmul(float[] x, int rows, Matrix.W4 w, float[] bias, float[] y) {
        int n = w.rows();
        int k = w.cols();
        if (rows <= 0) {
            return;
        }
        W4Groups groups = w.groups();
        float[] sx = groups.groupSums(x, rows, k);
        int chunks = n / V;
        if (rows == 1 && groups.contiguous() && w.groupSize() % 8 == 0 && prescalable(x, k)) {
            float[] xs = prescaled(x, k);
            // One slab of N per core: each packed row is then read in runs of N/cores words, long enough for
            // the prefetchers (8 slabs of 640 words each measured ~20% slower at 5120×5120 from DRAM).
            int slabs = Math.min(chunks, Parallel.threads());
            Parallel.forRange(slabs, (long) k * n / Math.max(1, slabs), (from, to) -> {
                for (int sl = from; sl < to; sl++) {
                    int c0 = (int) ((long) chunks * sl / slabs) * V;
                    int c1 = (int) ((long) chunks * (sl + 1) / slabs) * V;
                    singleToken(w, xs, sx, bias, y, c0, c1);
                }
            });
        } else if (rows <= MULTI_ROWS
                && chunks > 0
                && groups.contiguous()
                && w.groupSize() % 8 == 0
                && prescalable(x, rows * k)) {
            float[] xs = prescaled(x, rows * k);
            // As one token: one slab of N per core, each packed row read sequentially over the slab, every word
            // decoded once for all the rows.
            int slabs = Math.min(chunks, Parallel.threads());
            Parallel.forRange(slabs, (long) rows * k * n / Math.max(1, slabs), (from, to) -> {
                for (int sl = from; sl < to; sl++) {
                    int c0 = (int) ((long) chunks * sl / slabs) * V;
                    int c1 = (int) ((long) chunks * (sl + 1) / slabs) * V;
                    multiRow(w, xs, rows, sx, bias, y, c0, c1);
                }
            });
        } else {
            Parallel.forRange(
                    chunks,
                    (long) rows * k * V,
                    (from, to) -> buffered(x, rows, w, groups, sx, bias, y, from * V, to * V));
        }
        if (chunks * V < n) {
            ScalarKernels.w4Columns(x, rows, w, groups, sx, bias, y, chunks * V, n);
        }
    }

    private static boolean prescalable(float[] x, int k) {
        for (int c = 0; c < k; c++) {
            float a = Math.abs(x[c]);
            if (a != 0f && a < PRESCALE_MIN) {
                return false;
            }
        }
        return true;
    }

    /**
     * xs[k] = x[k]·2^{−4·(k mod 8)} for k mod 8 &lt; 7, x[k] for k mod 8 = 7 (exact, see the class comment). Also
     * for several rows of x at once (k = rows·K), since K is a multiple of 8.
     */
    private static float[] prescaled(float[] x, int k) {
        float[] xs = new float[k];
        for (int c = 0; c < k; c++) {
            int j = c & 7;
            xs[c] = j == 7 ? x[c] : Math.scalb(x[c], -4 * j);
        }
        return xs;
    }

    /** y[0, n0..n1) for one token; n1 − n0 is a multiple of V. */
    private static void singleToken(Matrix.W4 w, float[] xs, float[] sx, float[] bias, float[] y, int n0, int n1) {
        int n = w.rows();
        int rowsPerGroup = w.groupSize() / 8;
        int groups = w.cols() / w.groupSize();
        MemorySegment qw = w.qweight();
        float[] scales = w.scales();
        float[] acc = new float[n1 - n0];
        if (bias != null) {
            System.arraycopy(bias, n0, acc, 0, n1 - n0);
        }
        for (int g = 0; g < groups; g++) {
            int r0 = g * rowsPerGroup;
            int r1 = r0 + rowsPerGroup;
            float zeroTerm = -Matrix.W4.ZERO * sx[g];
            int c = n0;
            for (; c + TILE * V <= n1; c += TILE * V) {
                tile4(qw, n, r0, r1, c, xs, scales, g * n, zeroTerm, acc, c - n0);
            }
            for (; c < n1; c += V) {
                tile1(qw, n, r0, r1, c, xs, 0, scales, g * n, zeroTerm, acc, c - n0);
            }
        }
        System.arraycopy(acc, 0, y, n0, n1 - n0);
    }

    /**
     * One group's contribution to 4·V channels from c: four FMA chains over packed rows [r0, r1), then
     * out = fma(scale, chain − 8·sx, out) on out[o, o + 4V).
     */
    private static void tile4(
            MemorySegment qw,
            int n,
            int r0,
            int r1,
            int c,
            float[] xs,
            float[] scales,
            int sOff,
            float zeroTerm,
            float[] out,
            int o) {
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        for (int r = r0; r < r1; r++) {
            long off = 4L * ((long) r * n + c);
            IntVector w0 = IntVector.fromMemorySegment(I, qw, off, LE);
            IntVector w1 = IntVector.fromMemorySegment(I, qw, off + 4L * V, LE);
            IntVector w2 = IntVector.fromMemorySegment(I, qw, off + 8L * V, LE);
            IntVector w3 = IntVector.fromMemorySegment(I, qw, off + 12L * V, LE);
            int kb = 8 * r;
            for (int j = 0; j < 7; j++) {
                int mask = 0xF << (4 * j);
                FloatVector xb = FloatVector.broadcast(F, xs[kb + j]);
                a0 = nibble(w0, mask, xb, a0);
                a1 = nibble(w1, mask, xb, a1);
                a2 = nibble(w2, mask, xb, a2);
                a3 = nibble(w3, mask, xb, a3);
            }
            FloatVector xb = FloatVector.broadcast(F, xs[kb + 7]);
            a0 = toFloat(w0.lanewise(VectorOperators.LSHR, 28)).fma(xb, a0);
            a1 = toFloat(w1.lanewise(VectorOperators.LSHR, 28)).fma(xb, a1);
            a2 = toFloat(w2.lanewise(VectorOperators.LSHR, 28)).fma(xb, a2);
            a3 = toFloat(w3.lanewise(VectorOperators.LSHR, 28)).fma(xb, a3);
        }
        scaleInto(a0, scales, sOff + c, zeroTerm, out, o);
        scaleInto(a1, scales, sOff + c + V, zeroTerm, out, o + V);
        scaleInto(a2, scales, sOff + c + 2 * V, zeroTerm, out, o + 2 * V);
        scaleInto(a3, scales, sOff + c + 3 * V, zeroTerm, out, o + 3 * V);
    }

    /**
     * y[t, n0..n1) for rows t &lt; rows ≤ {@link #MULTI_ROWS}, from xs = the rows of x {@link #prescaled}; n1 − n0 is
     * a multiple of V. As {@link #singleToken}, groups outermost; 2 rows run {@link #rows2} (four channel vectors
     * per tile), 3 and 4 {@link #rows4} (two), 5 to 8 {@link #rows4} twice, over rows 0–3 and 4–7 (spare rows repeat
     * the last real one and are not written). One pass over 8 rows (16 chains) decoded each word once but ran 1.2–1.6×
     * slower than two passes of 8 chains that decode it twice (5120 × 5120, one core: 3,853 against 3,295 µs). Each
     * y[t, n] is the sequence of {@link Kernels#matmul}: the chains per group in increasing k, then one scale FMA.
     */
    private static void multiRow(
            Matrix.W4 w, float[] xs, int rows, float[] sx, float[] bias, float[] y, int n0, int n1) {
        int n = w.rows();
        int k = w.cols();
        int rowsPerGroup = w.groupSize() / 8;
        int groups = k / w.groupSize();
        MemorySegment qw = w.qweight();
        float[] scales = w.scales();
        int kernel = rows == 2 ? 2 : rows <= 4 ? 4 : 8;
        int tile = kernel == 2 ? 4 : 2;
        int[] xo = new int[kernel];
        for (int t = 0; t < kernel; t++) {
            xo[t] = Math.min(t, rows - 1) * k;
        }
        float[] zt = new float[kernel];
        for (int t = 0; t < rows; t++) {
            for (int c = n0; c < n1; c++) {
                y[t * n + c] = bias == null ? 0f : bias[c];
            }
        }
        for (int g = 0; g < groups; g++) {
            int r0 = g * rowsPerGroup;
            int r1 = r0 + rowsPerGroup;
            for (int t = 0; t < rows; t++) {
                zt[t] = -Matrix.W4.ZERO * sx[t * groups + g];
            }
            int c = n0;
            for (; c + tile * V <= n1; c += tile * V) {
                switch (kernel) {
                    case 2 -> rows2(qw, n, r0, r1, c, xs, xo, rows, scales, g * n, zt, y);
                    case 4 -> rows4(qw, n, r0, r1, c, xs, xo, rows, scales, g * n, zt, y, 0);
                    default -> {
                        rows4(qw, n, r0, r1, c, xs, xo, rows, scales, g * n, zt, y, 0);
                        rows4(qw, n, r0, r1, c, xs, xo, rows, scales, g * n, zt, y, 4);
                    }
                }
            }
            for (; c < n1; c += V) {
                for (int t = 0; t < rows; t++) {
                    tile1(qw, n, r0, r1, c, xs, xo[t], scales, g * n, zt[t], y, t * n + c);
                }
            }
        }
    }

    /**
     * One group's contribution to 4·V channels from c for 2 rows of x (rows past {@code live} repeat the last
     * real row and are not written): 8 FMA chains over packed rows [r0, r1), each word decoded once for
     * all rows, then y = fma(scale, chain − 8·sx, y) per live row.
     */
    private static void rows2(
            MemorySegment qw,
            int n,
            int r0,
            int r1,
            int c,
            float[] xs,
            int[] xo,
            int live,
            float[] scales,
            int sOff,
            float[] zt,
            float[] y) {
        int x0 = xo[0];
        int x1 = xo[1];
        FloatVector a00 = FloatVector.zero(F);
        FloatVector a01 = a00;
        FloatVector a02 = a00;
        FloatVector a03 = a00;
        FloatVector a10 = a00;
        FloatVector a11 = a00;
        FloatVector a12 = a00;
        FloatVector a13 = a00;
        for (int r = r0; r < r1; r++) {
            long off = 4L * ((long) r * n + c);
            IntVector w0 = IntVector.fromMemorySegment(I, qw, off, LE);
            IntVector w1 = IntVector.fromMemorySegment(I, qw, off + 4L * V, LE);
            IntVector w2 = IntVector.fromMemorySegment(I, qw, off + 8L * V, LE);
            IntVector w3 = IntVector.fromMemorySegment(I, qw, off + 12L * V, LE);
            int kb = 8 * r;
            for (int j = 0; j < 8; j++) {
                FloatVector d0 = code(w0, j);
                FloatVector d1 = code(w1, j);
                FloatVector d2 = code(w2, j);
                FloatVector d3 = code(w3, j);
                FloatVector xb;
                xb = FloatVector.broadcast(F, xs[x0 + kb + j]);
                a00 = d0.fma(xb, a00);
                a01 = d1.fma(xb, a01);
                a02 = d2.fma(xb, a02);
                a03 = d3.fma(xb, a03);
                xb = FloatVector.broadcast(F, xs[x1 + kb + j]);
                a10 = d0.fma(xb, a10);
                a11 = d1.fma(xb, a11);
                a12 = d2.fma(xb, a12);
                a13 = d3.fma(xb, a13);
            }
        }
        scaleInto(a00, scales, sOff + c, zt[0], y, c);
        scaleInto(a01, scales, sOff + c + V, zt[0], y, c + V);
        scaleInto(a02, scales, sOff + c + 2 * V, zt[0], y, c + 2 * V);
        scaleInto(a03, scales, sOff + c + 3 * V, zt[0], y, c + 3 * V);
        if (live > 1) {
            scaleInto(a10, scales, sOff + c, zt[1], y, 1 * n + c);
            scaleInto(a11, scales, sOff + c + V, zt[1], y, 1 * n + c + V);
            scaleInto(a12, scales, sOff + c + 2 * V, zt[1], y, 1 * n + c + 2 * V);
            scaleInto(a13, scales, sOff + c + 3 * V, zt[1], y, 1 * n + c + 3 * V);
        }
    }

    /**
     * One group's contribution to 2·V channels from c for rows t0 .. t0 + 3 of x (rows from {@code live} on repeat
     * the last real row and are not written): 8 FMA chains, each word decoded once for these rows, then y =
     * fma(scale, chain − 8·sx, y) per live row. Two channel vectors, not four: with 16 chains, four decoded vectors
     * and four words in registers, the 4-row product took twice the 2-row one's time (768 × 256, one core: 19
     * against 9 µs; now 12; at 5120 × 5120, 2,166 → 1,524 µs).
     */
    private static void rows4(
            MemorySegment qw,
            int n,
            int r0,
            int r1,
            int c,
            float[] xs,
            int[] xo,
            int live,
            float[] scales,
            int sOff,
            float[] zt,
            float[] y,
            int t0) {
        int x0 = xo[t0 + 0];
        int x1 = xo[t0 + 1];
        int x2 = xo[t0 + 2];
        int x3 = xo[t0 + 3];
        FloatVector a00 = FloatVector.zero(F);
        FloatVector a01 = a00;
        FloatVector a10 = a00;
        FloatVector a11 = a00;
        FloatVector a20 = a00;
        FloatVector a21 = a00;
        FloatVector a30 = a00;
        FloatVector a31 = a00;
        for (int r = r0; r < r1; r++) {
            long off = 4L * ((long) r * n + c);
            IntVector w0 = IntVector.fromMemorySegment(I, qw, off, LE);
            IntVector w1 = IntVector.fromMemorySegment(I, qw, off + 4L * V, LE);
            int kb = 8 * r;
            for (int j = 0; j < 8; j++) {
                FloatVector d0 = code(w0, j);
                FloatVector d1 = code(w1, j);
                FloatVector xb;
                xb = FloatVector.broadcast(F, xs[x0 + kb + j]);
                a00 = d0.fma(xb, a00);
                a01 = d1.fma(xb, a01);
                xb = FloatVector.broadcast(F, xs[x1 + kb + j]);
                a10 = d0.fma(xb, a10);
                a11 = d1.fma(xb, a11);
                xb = FloatVector.broadcast(F, xs[x2 + kb + j]);
                a20 = d0.fma(xb, a20);
                a21 = d1.fma(xb, a21);
                xb = FloatVector.broadcast(F, xs[x3 + kb + j]);
                a30 = d0.fma(xb, a30);
                a31 = d1.fma(xb, a31);
            }
        }
        scaleInto(a00, scales, sOff + c, zt[t0], y, t0 * n + c);
        scaleInto(a01, scales, sOff + c + V, zt[t0], y, t0 * n + c + V);
        if (live > t0 + 1) {
            scaleInto(a10, scales, sOff + c, zt[t0 + 1], y, (t0 + 1) * n + c);
            scaleInto(a11, scales, sOff + c + V, zt[t0 + 1], y, (t0 + 1) * n + c + V);
        }
        if (live > t0 + 2) {
            scaleInto(a20, scales, sOff + c, zt[t0 + 2], y, (t0 + 2) * n + c);
            scaleInto(a21, scales, sOff + c + V, zt[t0 + 2], y, (t0 + 2) * n + c + V);
        }
        if (live > t0 + 3) {
            scaleInto(a30, scales, sOff + c, zt[t0 + 3], y, (t0 + 3) * n + c);
            scaleInto(a31, scales, sOff + c + V, zt[t0 + 3], y, (t0 + 3) * n + c + V);
        }
    }

    /** Nibble j of each lane as float, scaled as {@link #tile4} reads it: q·2^{4j} for j &lt; 7, q for j = 7. */
    private static FloatVector code(IntVector word, int j) {
        return j == 7
                ? toFloat(word.lanewise(VectorOperators.LSHR, 28))
                : toFloat(word.lanewise(VectorOperators.AND, 0xF << (4 * j)));
    }

    /** fma(float(word &amp; mask), xb, acc): one nibble in place, q·2^{4j} against xb = x·2^{−4j}. */
    private static FloatVector nibble(IntVector word, int mask, FloatVector xb, FloatVector acc) {
        return toFloat(word.lanewise(VectorOperators.AND, mask)).fma(xb, acc);
    }

    /** {@link #tile4} for one vector of channels. */
    private static void tile1(
            MemorySegment qw,
            int n,
            int r0,
            int r1,
            int c,
            float[] xs,
            int xOff,
            float[] scales,
            int sOff,
            float zeroTerm,
            float[] out,
            int o) {
        FloatVector a = FloatVector.zero(F);
        for (int r = r0; r < r1; r++) {
            IntVector word = IntVector.fromMemorySegment(I, qw, 4L * ((long) r * n + c), LE);
            int kb = xOff + 8 * r;
            for (int j = 0; j < 7; j++) {
                a = toFloat(word.lanewise(VectorOperators.AND, 0xF << (4 * j)))
                        .fma(FloatVector.broadcast(F, xs[kb + j]), a);
            }
            a = toFloat(word.lanewise(VectorOperators.LSHR, 28)).fma(FloatVector.broadcast(F, xs[kb + 7]), a);
        }
        scaleInto(a, scales, sOff + c, zeroTerm, out, o);
    }

    /** out[o, o + V) = fma(scales[s, s + V), chain + zeroTerm, out[o, o + V)), zeroTerm = −8·sx. */
    private static void scaleInto(FloatVector chain, float[] scales, int s, float zeroTerm, float[] out, int o) {
        FloatVector.fromArray(F, scales, s)
                .fma(chain.add(zeroTerm), FloatVector.fromArray(F, out, o))
                .intoArray(out, o);
    }

    private static FloatVector toFloat(IntVector v) {
        return (FloatVector) v.convert(VectorOperators.I2F, 0);
    }

    /** y[t, n0..n1) for every token t; n1 − n0 is a multiple of V. */
    private static void buffered(
            float[] x, int rows, Matrix.W4 w, W4Groups groups, float[] sx, float[] bias, float[] y, int n0, int n1) {
        int n = w.rows();
        int k = w.cols();
        int[] members = groups.members();
        int[] start = groups.start();
        int groupCount = groups.groups();
        int largest = 0;
        for (int g = 0; g < groupCount; g++) {
            largest = Math.max(largest, start[g + 1] - start[g]);
        }
        /* [largest, V]: one group's codes for one chunk of channels, as float, in member order */
        float[] codes = new float[largest * V];
        for (int t = 0; t < rows; t++) {
            for (int c = n0; c < n1; c++) {
                y[t * n + c] = bias == null ? 0f : bias[c];
            }
        }
        MemorySegment qw = w.qweight();
        float[] scales = w.scales();
        for (int t0 = 0; t0 < rows; t0 += TOKEN_BLOCK) {
            int t1 = Math.min(rows, t0 + TOKEN_BLOCK);
            for (int g = 0; g < groupCount; g++) {
                int m0 = start[g];
                int m1 = start[g + 1];
                for (int c = n0; c < n1; c += V) {
                    decode(qw, n, members, m0, m1, c, codes);
                    FloatVector s = FloatVector.fromArray(F, scales, g * n + c);
                    int t = t0;
                    for (; t + 4 <= t1; t += 4) {
                        tokens4(x, k, n, members, m0, m1, codes, s, sx, groupCount, g, t, c, y);
                    }
                    for (; t < t1; t++) {
                        tokens1(x, k, n, members, m0, m1, codes, s, sx, groupCount, g, t, c, y);
                    }
                }
            }
        }
    }

    /** codes[(i − m0)·V + lane] = q[members[i], c + lane] as float, for i in [m0, m1). */
    private static void decode(MemorySegment qw, int n, int[] members, int m0, int m1, int c, float[] codes) {
        for (int i = m0; i < m1; i++) {
            int kk = members[i];
            IntVector word = IntVector.fromMemorySegment(I, qw, 4L * ((long) (kk >>> 3) * n + c), LE);
            toFloat(word.lanewise(VectorOperators.LSHR, 4 * (kk & 7)).lanewise(VectorOperators.AND, 0xF))
                    .intoArray(codes, (i - m0) * V);
        }
    }

    /** Group g's contribution to y[t .. t + 4, c .. c + V), the four chains sharing each decoded vector. */
    private static void tokens4(
            float[] x,
            int k,
            int n,
            int[] members,
            int m0,
            int m1,
            float[] codes,
            FloatVector s,
            float[] sx,
            int groupCount,
            int g,
            int t,
            int c,
            float[] y) {
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        int x0 = t * k;
        int x1 = x0 + k;
        int x2 = x1 + k;
        int x3 = x2 + k;
        for (int i = m0; i < m1; i++) {
            FloatVector q = FloatVector.fromArray(F, codes, (i - m0) * V);
            int kk = members[i];
            a0 = q.fma(FloatVector.broadcast(F, x[x0 + kk]), a0);
            a1 = q.fma(FloatVector.broadcast(F, x[x1 + kk]), a1);
            a2 = q.fma(FloatVector.broadcast(F, x[x2 + kk]), a2);
            a3 = q.fma(FloatVector.broadcast(F, x[x3 + kk]), a3);
        }
        scaleInto(a0, s, -Matrix.W4.ZERO * sx[t * groupCount + g], y, t * n + c);
        scaleInto(a1, s, -Matrix.W4.ZERO * sx[(t + 1) * groupCount + g], y, (t + 1) * n + c);
        scaleInto(a2, s, -Matrix.W4.ZERO * sx[(t + 2) * groupCount + g], y, (t + 2) * n + c);
        scaleInto(a3, s, -Matrix.W4.ZERO * sx[(t + 3) * groupCount + g], y, (t + 3) * n + c);
    }

    /** {@link #tokens4} for one token. */
    private static void tokens1(
            float[] x,
            int k,
            int n,
            int[] members,
            int m0,
            int m1,
            float[] codes,
            FloatVector s,
            float[] sx,
            int groupCount,
            int g,
            int t,
            int c,
            float[] y) {
        FloatVector a = FloatVector.zero(F);
        int x0 = t * k;
        for (int i = m0; i < m1; i++) {
            a = FloatVector.fromArray(F, codes, (i - m0) * V).fma(FloatVector.broadcast(F, x[x0 + members[i]]), a);
        }
        scaleInto(a, s, -Matrix.W4.ZERO * sx[t * groupCount + g], y, t * n + c);
    }

    /** out[o, o + V) = fma(s, chain + zeroTerm, out[o, o + V)). */
    private static void scaleInto(FloatVector chain, FloatVector s, float zeroTerm, float[] out, int o) {
        s.fma(chain.add(zeroTerm), FloatVector.fromArray(F, out, o)).intoArray(out, o);
    }
}
