package dev.m2q.core.pipeline;

import static java.nio.ByteOrder.LITTLE_ENDIAN;

import dev.m2q.core.InputException;
import dev.m2q.core.io.Checkpoint;
import dev.m2q.core.io.TensorView;
import dev.m2q.core.kernels.Parallel;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.quant.GptqFormat;
import dev.m2q.core.quant.Rtn;
import dev.m2q.core.tensor.Bf16;
import dev.m2q.core.tensor.DType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * Refuses, before layer 0 and before anything is written, a source weight the release could not hold: a NaN or an
 * infinity in any tensor the release quantizes or copies, and a finite value that overflows where the release
 * stores it in 16 bits. Without it such a weight surfaces deep inside a layer as an internal error (GPTQ blames
 * its damping), after the partial output was created.
 *
 * <p>What each tensor must satisfy, by where its values end up:
 *
 * <ul>
 *   <li>a quantized linear's weight: its group's scale, 2·|w|/15 rounded to fp16 before any code is chosen
 *       ({@link Rtn#scale}), must be finite, so |w| ≤ about 491 000; in compressed-tensors that scale is then
 *       rounded to BF16 and must stay in fp16's range ({@code CompressedTensorsFormat.asWritten}), so |w| ≤ about
 *       490 000. This is the RTN/GPTQ rule, the largest scale any method derives from a weight (AutoRound's is
 *       absmax/8 times a clip factor ≤ 1), so a weight that passes is never what overflows;
 *   <li>a quantized linear's bias in the GPTQ layout, stored as F16 (FORMATS.md §2): |b| must round to a finite
 *       fp16 (below 65520); compressed-tensors keeps biases in the model's dtype;
 *   <li>everything else (embeddings, norms, lm_head), copied in its own dtype: finite.
 * </ul>
 *
 * Each rule is a bound on |x|, so in a tensor's own encoding it is one integer comparison on the magnitude bits
 * ({@code bits & 0x7FFF > limit} for BF16 and F16, NaN and ±Inf included since their bits are the largest): the
 * scan reads the memory-mapped shards four BF16 values per 64-bit load, in parallel chunks, and copies nothing.
 */
public final class WeightScan {
    /** Elements per parallel work item: 8 MiB of BF16, large enough to amortize the hand-off. */
    static final int CHUNK = 1 << 22;

    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(LITTLE_ENDIAN);
    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(LITTLE_ENDIAN);
    private static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(LITTLE_ENDIAN);

    /** Per source dtype and rule, the largest magnitude bit pattern accepted (see {@link #limitBits}). */
    private static final Map<DType, Map<Rule, Integer>> LIMITS = limits();

    private WeightScan() {}

    /** What a clean scan covered: tensors, their bytes, and the wall time. */
    public record Result(int tensors, long bytes, double seconds) {}

    /** Where a tensor's values end up in the release, which decides the bound they must satisfy. */
    enum Rule {
        /** Copied in its own dtype: finite. */
        FINITE,
        /** A quantized linear's weight in the GPTQ layout: its fp16 group scale is finite. */
        LINEAR_GPTQ,
        /** A quantized linear's weight in compressed-tensors: also its scale rounded to BF16 fits fp16. */
        LINEAR_COMPRESSED,
        /** Stored as F16: rounds to a finite fp16. */
        F16;

        /** Whether a value of magnitude {@code a} (≥ 0, or NaN) satisfies the rule. */
        boolean accepts(double a) {
            if (!(a <= Float.MAX_VALUE)) {
                return false;
            }
            float f = (float) a;
            return switch (this) {
                case FINITE -> true;
                case F16 -> Float.isFinite(Float.float16ToFloat(Float.floatToFloat16(f)));
                case LINEAR_GPTQ -> scaleOf(f) != null;
                case LINEAR_COMPRESSED -> {
                    Float s = scaleOf(f);
                    if (s == null) {
                        yield false;
                    }
                    float b = Bf16.round(s); // QuantizedLinear holds only scales exact in fp16
                    yield Float.float16ToFloat(Float.floatToFloat16(b)) == b;
                }
            };
        }

        private static Float scaleOf(float absmax) {
            try {
                return Rtn.scale(absmax);
            } catch (IllegalArgumentException e) {
                return null;
            }
        }
    }

    /**
     * Checks every tensor of {@code model} that a release in {@code format} quantizes or copies.
     *
     * @throws InputException naming the first offending element, {@code tensor[row, col]}, its value, the shard and
     *     why it cannot be stored; a missing or malformed tensor as the checkpoint reader reports it
     */
    public static Result check(Path model, ModelConfig cfg, ReleaseFormat format) {
        long t0 = System.nanoTime();
        Set<String> linears = GptqFormat.quantizedLinears(cfg).keySet();
        try (Checkpoint src = Checkpoint.open(model)) {
            List<Target> targets = new ArrayList<>();
            long bytes = 0;
            for (String name : cfg.expectedShapes().keySet()) {
                TensorView v = src.tensor(name);
                if (!v.dtype().isFloatingPoint()) {
                    continue; // the model's loader refuses it, naming the dtype
                }
                targets.add(new Target(v, ruleOf(name, linears, format)));
                bytes += v.byteSize();
            }
            Finding f = scan(targets);
            if (f != null) {
                throw new InputException(f.message(format));
            }
            return new Result(targets.size(), bytes, (System.nanoTime() - t0) / 1e9);
        }
    }

    static Rule ruleOf(String name, Set<String> linears, ReleaseFormat format) {
        if (name.endsWith(".weight") && linears.contains(name.substring(0, name.length() - 7))) {
            return format.storesF16() ? Rule.LINEAR_GPTQ : Rule.LINEAR_COMPRESSED;
        }
        if (name.endsWith(".bias") && linears.contains(name.substring(0, name.length() - 5)) && format.storesF16()) {
            return Rule.F16;
        }
        return Rule.FINITE;
    }

    /** One tensor to scan and its rule. */
    record Target(TensorView view, Rule rule) {}

    /** The first offending element of one tensor, and how many tensors offend in all. */
    record Finding(Target target, long index, int offendingTensors) {
        String message(ReleaseFormat format) {
            TensorView v = target.view();
            float x = v.getFloat(index);
            String at = v.name() + multiIndex(v.shape(), index);
            String where = v.source() == null ? "" : " (in " + v.source() + ")";
            String others = offendingTensors > 1
                    ? "; " + (offendingTensors - 1) + " other tensor" + (offendingTensors > 2 ? "s" : "")
                            + " fail the same check"
                    : "";
            if (!Float.isFinite(x)) {
                return at + " is " + (Float.isNaN(x) ? "NaN" : x > 0 ? "+Inf" : "-Inf") + where
                        + ": the checkpoint holds non-finite weights (damaged, or saved from a diverged run);"
                        + " re-download or re-export it" + others;
            }
            String value = String.format(Locale.ROOT, "%.6g", x);
            return switch (target.rule()) {
                case F16 ->
                    at + " is " + value + where + ", beyond fp16's range (max 65504), in which the GPTQ layout stores"
                            + " biases; write --format compressed-tensors, which keeps biases in the model's dtype"
                            + others;
                case LINEAR_GPTQ, LINEAR_COMPRESSED ->
                    at + " is " + value + where + ": the 4-bit scale of its group, 2·|w|/15 = "
                            + String.format(Locale.ROOT, "%.6g", 2 * Math.abs(x) / 15)
                            + ", overflows fp16 (max 65504), "
                            + (format.storesF16()
                                    ? "in which the GPTQ layout stores scales"
                                    : "to which the quantizer rounds scales")
                            + "; a weight this large cannot be quantized to 4 bits (is the checkpoint damaged?)"
                            + others;
                case FINITE -> throw new IllegalStateException("a finite value fails only a range rule: " + at);
            };
        }
    }

    /** "[i]", "[row, col]" or "[i, j, k]": the flat index as a multi-index of {@code shape}. */
    static String multiIndex(long[] shape, long flat) {
        if (shape.length == 0) {
            return "";
        }
        long[] ix = new long[shape.length];
        long r = flat;
        for (int d = shape.length - 1; d >= 0; d--) {
            ix[d] = r % shape[d];
            r /= shape[d];
        }
        StringBuilder b = new StringBuilder("[");
        for (int d = 0; d < ix.length; d++) {
            b.append(d == 0 ? "" : ", ").append(ix[d]);
        }
        return b.append(']').toString();
    }

    /** The first offending element in the first offending tensor (in {@code targets}' order), or null. */
    static Finding scan(List<Target> targets) {
        List<long[]> chunks = new ArrayList<>(); // {target, from, to}
        for (int t = 0; t < targets.size(); t++) {
            long n = targets.get(t).view().numel();
            for (long from = 0; from < n; from += CHUNK) {
                chunks.add(new long[] {t, from, Math.min(n, from + CHUNK)});
            }
        }
        long[] first = new long[chunks.size()];
        Parallel.forRange(chunks.size(), CHUNK, (a, b) -> {
            for (int c = a; c < b; c++) {
                long[] ch = chunks.get(c);
                Target tg = targets.get((int) ch[0]);
                first[c] = firstOffending(tg.view(), tg.rule(), ch[1], ch[2]);
            }
        });
        long[] firstOfTarget = new long[targets.size()];
        Arrays.fill(firstOfTarget, -1);
        for (int c = 0; c < chunks.size(); c++) {
            int t = (int) chunks.get(c)[0];
            if (first[c] >= 0 && firstOfTarget[t] < 0) {
                firstOfTarget[t] = first[c];
            }
        }
        Finding found = null;
        int offending = 0;
        for (int t = 0; t < targets.size(); t++) {
            if (firstOfTarget[t] >= 0) {
                offending++;
                if (found == null) {
                    found = new Finding(targets.get(t), firstOfTarget[t], 0);
                }
            }
        }
        return found == null ? null : new Finding(found.target(), found.index(), offending);
    }

    /** The first element in [from, to) of {@code v} that {@code rule} refuses, or −1. */
    static long firstOffending(TensorView v, Rule rule, long from, long to) {
        MemorySegment data = v.data();
        return switch (v.dtype()) {
            case BF16 -> first16(data, from, to, limitBits(DType.BF16, rule));
            case F16 -> first16(data, from, to, limitBits(DType.F16, rule));
            case F32 -> first32(data, from, to, limitBits(DType.F32, rule));
            default -> {
                for (long i = from; i < to; i++) {
                    if (!rule.accepts(Math.abs((double) v.getFloat(i)))) {
                        yield i;
                    }
                }
                yield -1;
            }
        };
    }

    /** {@link #firstOver} for 16-bit elements (bf16, fp16). */
    static long first16(MemorySegment data, long from, long to, int limit) {
        return firstOver(data, from, to, limit, 2);
    }

    /** {@link #firstOver} for 32-bit elements (fp32). */
    static long first32(MemorySegment data, long from, long to, int limit) {
        return firstOver(data, from, to, limit, 4);
    }

    /**
     * The first element of {@code width} bytes (2 or 4) in [from, to) whose magnitude bits exceed {@code limit},
     * or −1. Four 64-bit loads per step, each holding 8/width lanes: with every lane masked to its magnitude (at
     * most M = 2^(8·width−1) − 1), adding M − limit to each lane sets the lane's top bit exactly when the lane
     * exceeds the limit, and never carries into the next lane (the sum stays ≤ 2M). A step that hits is rescanned
     * one element at a time to find the first.
     */
    static long firstOver(MemorySegment data, long from, long to, int limit, int width) {
        long laneMax = (1L << (8 * width - 1)) - 1;
        long ones = width == 2 ? 0x0001_0001_0001_0001L : 0x0000_0001_0000_0001L;
        long mask = laneMax * ones;
        long add = (laneMax - limit) * ones;
        long top = (laneMax + 1) * ones;
        int step = 4 * (8 / width);
        long i = from;
        for (; i + step <= to; i += step) {
            long off = i * width;
            long hit = ((data.get(I64, off) & mask) + add)
                    | ((data.get(I64, off + 8) & mask) + add)
                    | ((data.get(I64, off + 16) & mask) + add)
                    | ((data.get(I64, off + 24) & mask) + add);
            if ((hit & top) != 0) {
                break;
            }
        }
        for (; i < to; i++) {
            long magnitude = width == 2 ? data.get(I16, i * 2) & 0x7FFF : data.get(I32, i * 4) & 0x7FFF_FFFFL;
            if (magnitude > limit) {
                return i;
            }
        }
        return -1;
    }

    /** The largest magnitude bit pattern of {@code dtype} that {@code rule} accepts. */
    static int limitBits(DType dtype, Rule rule) {
        return LIMITS.get(dtype).get(rule);
    }

    private static Map<DType, Map<Rule, Integer>> limits() {
        Map<DType, Map<Rule, Integer>> m = new EnumMap<>(DType.class);
        for (DType d : List.of(DType.BF16, DType.F16, DType.F32)) {
            Map<Rule, Integer> byRule = new EnumMap<>(Rule.class);
            for (Rule r : Rule.values()) {
                byRule.put(r, largestAccepted(d, r));
            }
            m.put(d, byRule);
        }
        return m;
    }

    /**
     * Binary search over the magnitude bit patterns of {@code d} below infinity, which are ordered like the
     * magnitudes they encode; every rule accepts 0 and is monotone in |x|.
     */
    private static int largestAccepted(DType d, Rule r) {
        int lo = 0; // accepted
        int hi =
                switch (d) {
                    case BF16 -> 0x7F80;
                    case F16 -> 0x7C00;
                    case F32 -> 0x7F80_0000;
                    default -> throw new IllegalArgumentException(d.toString());
                }; // infinity: refused
        while (hi - lo > 1) {
            int mid = lo + (hi - lo) / 2;
            if (r.accepts(decode(d, mid))) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        return lo;
    }

    private static float decode(DType d, int bits) {
        return switch (d) {
            case BF16 -> Bf16.toFloat((short) bits);
            case F16 -> Float.float16ToFloat((short) bits);
            case F32 -> Float.intBitsToFloat(bits);
            default -> throw new IllegalArgumentException(d.toString());
        };
    }
}
