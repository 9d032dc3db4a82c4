package dev.m2q.core.grad;

import static jdk.incubator.vector.VectorOperators.D2F;
import static jdk.incubator.vector.VectorOperators.F2D;

import dev.m2q.core.kernels.Parallel;
import dev.m2q.core.quant.Bits;
import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * SignRound's fake 4-bit quantizer (ALGORITHMS.md §3) with the straight-through round, on W [out, in] in groups of
 * G consecutive input columns per row. Trainable: V [out, in] inside the rounding, clip factors α, β [out, in/G].
 * Per group, with a = clamp(α, 0, 1), b = clamp(β, 0, 1), lo = min(w, 0)·a, hi = max(w, 0)·b:
 *
 * <pre>
 * s = fp16(−lo/8) if −lo &gt; hi, else fp16(−hi/8)        the larger clipped extreme lands on code −8
 * s = sign(s)·max(|s|, τ)                               τ = fp16(1e−5); s = 0 becomes +τ
 * q = clamp(round(w/s + V), −8, 7)                     round half to even; an integer (a zero code is +0)
 * ŵ = s·q
 * </pre>
 *
 * <p><b>Sign of s.</b> §3 says "m = the extreme of larger magnitude (signed), s = m/8". Taken literally that maps
 * the extreme m to code +8, which the clamp cuts to 7: every group would lose its largest weight. The rule
 * above is AutoRound's {@code quant_tensor_sym} (its {@code max_v} is the negated m), which puts the extreme on
 * −8 and so is "full range": s = −m/8. A tie |lo| = hi takes the positive side, as AutoRound does. The scale is
 * rounded to fp16 before any code is chosen, as AutoRound and {@code Rtn} do, so the exported fp16 scales and
 * codes dequantize to exactly this ŵ, bit for bit (q is an integer, so ŵ = s·0 carries the sign of zero that the
 * exported s·(code − 8) does); τ is AutoRound's floor that keeps s ≠ 0 (α = β = 0, all-zero groups).
 * In fp32 every step is rounded as torch rounds it, so with V = 0 and α = β = 1 the codes are exactly
 * {@code Rtn.code(w, s) − 8} and ŵ is {@code Rtn.dequant} of them (RTN with AutoRound's scale rule).
 *
 * <p><b>Gradients.</b> round() is taken as the identity (straight-through estimator), and so is the fp16
 * rounding of s; the clamp to [−8, 7] passes the gradient where −8 ≤ round(w/s + V) ≤ 7 and blocks it outside.
 * Writing in = [−8 ≤ round(w/s + V) ≤ 7]:
 *
 * <pre>
 * ∂ŵ/∂V = s·in            ∂ŵ/∂s = q − in·w/s
 * ∂s/∂α = −min(w, 0)/8    when the negative side sets s (else 0)
 * ∂s/∂β = −max(w, 0)/8    when the positive side sets s (else 0)
 * </pre>
 *
 * and 0 for both when the floor τ set s. Like AutoRound, which clamps the stored α, β into [0, 1] in place before
 * each use, the gradient is the one at the clamped point (the clamp itself passes it), so a factor pushed past
 * a bound can come back. V is not bounded here: SignRound's schedule (lr = 1/iters decaying linearly to 0, so
 * Σ lr ≈ 1/2) keeps |V| within about 0.5 by itself.
 *
 * <p><b>Use in SignRound.</b> Per step and per linear: ŵ = {@link #forward}(W, V, α, β); run the layer with ŵ in
 * place of W ({@link LayerParams#with}); the layer's backward gives ∂L/∂ŵ; {@link #backward} turns it into
 * ∂L/∂V, ∂L/∂α, ∂L/∂β for the signed-gradient update.
 *
 * <p><b>Width.</b> The above is 4 bits. At b bits ({@link Bits}, docs/FORMATS-8BIT.md) every 8 is the zero point
 * 2^(b−1) and the code range is [−2^(b−1), 2^(b−1) − 1]: at 8 bits s = fp16(−m/128), q ∈ [−128, 127], stored as
 * q + 128, and ∂s/∂α = −min(w, 0)/128. The 4-bit arithmetic is unchanged (the divisor is the same double 8).
 */
public final class FakeQuantizer {
    public static final int MIN_CODE = -8;
    public static final int MAX_CODE = 7;
    /** AutoRound's floor on |s| ({@code q_scale_thresh} 1e−5), as the fp16 value it becomes. */
    public static final double MIN_SCALE = fp16(1e-5);

    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    /** The backward's double lanes, and floats with as many lanes (half the width) to widen into them. */
    private static final VectorSpecies<Double> D = DoubleVector.SPECIES_PREFERRED;

    private static final VectorSpecies<Float> FD =
            VectorSpecies.of(float.class, VectorShape.forBitSize(D.vectorBitSize() / 2));
    /** 1.5·2²³: adding and subtracting it rounds a float of magnitude below 2²² to an integer, ties to even. */
    private static final float MAGIC = 0x1.8p23f;

    /**
     * The backward's per-thread scratch for a group's terms (G doubles, grown on demand), so that the step makes no
     * garbage per group.
     */
    private static final ThreadLocal<double[]> TERMS = ThreadLocal.withInitial(() -> new double[0]);

    private final int groupSize;
    /** The code range [minCode, maxCode], read at run time by the loops (fast paths and twins alike). */
    private final int minCode;

    private final int maxCode;
    /** The zero point 2^(b−1) as the divisor of the scale rule: s = fp16(−m/half). */
    private final double half;

    /** @param groupSize G, or −1 ({@code GroupSize.PER_ROW}): one group of each weight's whole row */
    public FakeQuantizer(int groupSize) {
        this(groupSize, Bits.FOUR);
    }

    /**
     * @param groupSize G, or −1 ({@code GroupSize.PER_ROW}): one group of each weight's whole row
     * @param bits the code width: codes in [−2^(b−1), 2^(b−1) − 1]
     */
    public FakeQuantizer(int groupSize, Bits bits) {
        if (groupSize <= 0 && groupSize != -1) {
            throw new IllegalArgumentException("group size must be positive or -1 (per row), got " + groupSize);
        }
        this.groupSize = groupSize;
        this.minCode = -bits.zero();
        this.maxCode = bits.maxCode() - bits.zero();
        this.half = bits.zero();
    }

    /** G for a weight with {@code cols} input columns: cols itself for one group per row. */
    private int group(int cols) {
        return groupSize == -1 ? cols : groupSize;
    }

    /**
     * A group's scale s and its derivatives ∂s/∂α, ∂s/∂β (through the fp16 rounding as identity; both 0 when the
     * floor τ set s).
     */
    private record Scale(double s, double dAlpha, double dBeta) {}

    private Scale scale(Tensor w, double wmin, double wmax, double alpha, double beta) {
        double lo = w.narrow(wmin * Math.clamp(alpha, 0.0, 1.0));
        double hi = w.narrow(wmax * Math.clamp(beta, 0.0, 1.0));
        boolean negative = -lo > hi;
        double s = fp16((negative ? -lo : -hi) / half);
        if (Double.isInfinite(s)) {
            throw new IllegalArgumentException("group extreme " + Math.max(-lo, hi) + " needs a scale beyond fp16");
        }
        if (s < 0 ? s > -MIN_SCALE : s < MIN_SCALE) {
            return new Scale(s < 0 ? -MIN_SCALE : MIN_SCALE, 0, 0);
        }
        return negative ? new Scale(s, -wmin / half, 0) : new Scale(s, 0, -wmax / half);
    }

    /** The scales s [out, in/G], w's precision: with ŵ they give the codes to export, q = ŵ/s (exact). */
    public Tensor scales(Tensor w, Tensor alpha, Tensor beta) {
        checkShapes(w, w, alpha, beta);
        Tensor s = alpha.zerosLike();
        int g = group(w.cols());
        forEachGroup(w, alpha, beta, (from, sc) -> s.set(from / g, sc.s()));
        return s;
    }

    /** ŵ [out, in], a new tensor of w's precision. */
    public Tensor forward(Tensor w, Tensor v, Tensor alpha, Tensor beta) {
        Tensor wq = w.zerosLike();
        forward(w, v, alpha, beta, wq);
        return wq;
    }

    /** Writes ŵ into {@code wq} [out, in] (w's precision; its old values are not read), reusing its storage. */
    public void forward(Tensor w, Tensor v, Tensor alpha, Tensor beta, Tensor wq) {
        checkShapes(w, v, alpha, beta);
        wq.requireShape(w.rows(), w.cols(), "ŵ");
        if (w instanceof Tensor.F32 wf && v instanceof Tensor.F32 vf && wq instanceof Tensor.F32 qf) {
            forwardF32(wf, vf.data(), alpha, beta, qf.data());
            return;
        }
        forwardTwin(w, v, alpha, beta, wq);
    }

    /**
     * The fp32 fast path of {@link #forward}, on the arrays: the same bits as {@link #forwardTwin}. Per element
     * t = w/s + V is one fp32 division and one fp32 addition: each is a single operation on two floats (s is an
     * fp16 value, so a float), and a double result of such an operation rounded to float is the float operation's
     * result (double has more than 2·24 + 2 significand bits), which is what the twin's two {@code narrow}s do.
     * ŵ = s·q is exact in both (an 11-bit s times a code of at most 8 bits). The lanes run on the Vector API,
     * whose lanewise division, addition, min and max are the scalar IEEE operations; the rounding is
     * {@link #roundHalfEven} after a clamp to one past the code range, and a NaN t (a NaN or infinite V) gives
     * code 0 as the twin's {@code (int)} cast does. A group's last G mod (lanes) elements run the scalar loop.
     */
    private void forwardF32(Tensor.F32 wt, float[] v, Tensor alpha, Tensor beta, float[] wq) {
        float[] w = wt.data();
        int g = group(wt.cols());
        int lo = minCode;
        int hi = maxCode;
        float below = lo - 1;
        float above = hi + 1;
        forEachGroupF32(wt, alpha, beta, (from, s) -> {
            float sf = (float) s.s();
            int end = from + g;
            int i = from;
            for (; i <= end - F.length(); i += F.length()) {
                FloatVector t = FloatVector.fromArray(F, w, i).div(sf).add(FloatVector.fromArray(F, v, i));
                FloatVector r = roundHalfEven(t.max(below).min(above));
                r = r.blend(0f, r.test(VectorOperators.IS_NAN)).max(lo).min(hi);
                r.mul(sf).intoArray(wq, i);
            }
            for (; i < end; i++) {
                float t = w[i] / sf + v[i];
                int q = (int) Math.clamp(Math.rint(t), lo, hi);
                wq[i] = sf * q;
            }
        });
    }

    /**
     * rint of each lane, for |x| &lt; 2²²: (x + 1.5·2²³) − 1.5·2²³ rounds the sum once in the default mode, which is
     * round half to even at integer spacing. The callers clamp x to [minCode − 1, maxCode + 1] first (which keeps
     * clamp(rint(x), minCode, maxCode) as it was, and the lanes inside the magnitude bound); a NaN lane stays NaN.
     * The result is never −0: the final subtraction of two equal floats gives +0, and a −0 input gives +0 too,
     * where rint keeps −0; the callers only use it as a code (an integer, so the sign of zero does not matter).
     */
    private static FloatVector roundHalfEven(FloatVector x) {
        return x.add(MAGIC).sub(MAGIC);
    }

    /** The scalar twin of {@link #forward}: element arithmetic in double through {@link Tensor}, any precision (public for the bit-equality tests and the JMH comparison). */
    public void forwardTwin(Tensor w, Tensor v, Tensor alpha, Tensor beta, Tensor wq) {
        checkShapes(w, v, alpha, beta);
        wq.requireShape(w.rows(), w.cols(), "ŵ");
        int g = group(w.cols());
        forEachGroup(w, alpha, beta, (from, s) -> {
            for (int i = from; i < from + g; i++) {
                int q = (int) Math.clamp(rounded(w, v, i, s.s()), minCode, maxCode);
                wq.set(i, s.s() * q);
            }
        });
    }

    /**
     * Adds ∂L/∂V [out, in] into dv and ∂L/∂α, ∂L/∂β [out, in/G] into dAlpha, dBeta, given dwq = ∂L/∂ŵ [out, in]
     * and the forward's operands.
     */
    public void backward(
            Tensor w, Tensor v, Tensor alpha, Tensor beta, Tensor dwq, Tensor dv, Tensor dAlpha, Tensor dBeta) {
        checkShapes(w, v, alpha, beta);
        dwq.requireShape(w.rows(), w.cols(), "dŵ");
        dv.requireShape(w.rows(), w.cols(), "dV");
        dAlpha.requireShape(alpha.rows(), alpha.cols(), "dα");
        dBeta.requireShape(beta.rows(), beta.cols(), "dβ");
        if (w instanceof Tensor.F32 wf
                && v instanceof Tensor.F32 vf
                && dwq instanceof Tensor.F32 gf
                && dv instanceof Tensor.F32 dvf) {
            backwardF32(wf, vf.data(), alpha, beta, gf.data(), dvf.data(), dAlpha, dBeta);
            return;
        }
        backwardTwin(w, v, alpha, beta, dwq, dv, dAlpha, dBeta);
    }

    /**
     * The fp32 fast path of {@link #backward}, on the arrays: the same bits as {@link #backwardTwin}. u comes as
     * in {@link #forwardF32}; dV's update g·s + dV stays one double sum rounded once (g·s is exact in double, the
     * sum is not exact in float), and the scale gradient ds is the twin's sequential double sum in the same order,
     * with w/s in double as the twin has it. The lanes run on the Vector API: u as in the forward (its
     * {@link #roundHalfEven} after the clamp to one past the code range leaves both the inside test and
     * clamp(u) as they were), widened to double lanes, where each element's term g·(u − w/s) or g·clamp(u) and
     * its dV are the twin's double operations; the terms go to a scratch array and are summed into ds one by one
     * in element order. A NaN or infinite V makes ds NaN in both (its payload bits may differ).
     */
    private void backwardF32(
            Tensor.F32 wt, float[] v, Tensor alpha, Tensor beta, float[] dwq, float[] dv, Tensor dAlpha, Tensor dBeta) {
        float[] w = wt.data();
        int gs = group(wt.cols());
        double lo = minCode;
        double hi = maxCode;
        int lanes = D.length();
        float below = minCode - 1;
        float above = maxCode + 1;
        forEachGroupF32(wt, alpha, beta, (from, s) -> {
            double sd = s.s();
            float sf = (float) sd;
            int end = from + gs;
            int i = from;
            double[] terms = TERMS.get();
            if (terms.length < gs) {
                terms = new double[gs];
                TERMS.set(terms);
            }
            for (; i <= end - lanes; i += lanes) {
                FloatVector wf = FloatVector.fromArray(FD, w, i);
                FloatVector t = wf.div(sf).add(FloatVector.fromArray(FD, v, i));
                DoubleVector u =
                        (DoubleVector) roundHalfEven(t.max(below).min(above)).convertShape(F2D, D, 0);
                DoubleVector wd = (DoubleVector) wf.convertShape(F2D, D, 0);
                DoubleVector g =
                        (DoubleVector) FloatVector.fromArray(FD, dwq, i).convertShape(F2D, D, 0);
                DoubleVector old =
                        (DoubleVector) FloatVector.fromArray(FD, dv, i).convertShape(F2D, D, 0);
                VectorMask<Double> inside = u.compare(VectorOperators.GE, lo).and(u.compare(VectorOperators.LE, hi));
                ((FloatVector) old.blend(old.add(g.mul(sd)), inside).convertShape(D2F, FD, 0)).intoArray(dv, i);
                g.mul(u.max(lo).min(hi).blend(u.sub(wd.div(sd)), inside)).intoArray(terms, i - from);
            }
            double ds = 0;
            for (int k = 0; k < i - from; k++) {
                ds += terms[k];
            }
            for (; i < end; i++) {
                double u = Math.rint(w[i] / sf + v[i]);
                double g = dwq[i];
                if (u >= lo && u <= hi) {
                    dv[i] = (float) (dv[i] + g * sd);
                    ds += g * (u - w[i] / sd);
                } else {
                    ds += g * Math.clamp(u, lo, hi);
                }
            }
            dAlpha.add(from / gs, ds * s.dAlpha());
            dBeta.add(from / gs, ds * s.dBeta());
        });
    }

    /** The scalar twin of {@link #backward}: element arithmetic in double through {@link Tensor}, any precision (public for the bit-equality tests and the JMH comparison). */
    public void backwardTwin(
            Tensor w, Tensor v, Tensor alpha, Tensor beta, Tensor dwq, Tensor dv, Tensor dAlpha, Tensor dBeta) {
        checkShapes(w, v, alpha, beta);
        int gs = group(w.cols());
        forEachGroup(w, alpha, beta, (from, s) -> {
            double ds = 0;
            for (int i = from; i < from + gs; i++) {
                double u = rounded(w, v, i, s.s());
                boolean inside = u >= minCode && u <= maxCode;
                double g = dwq.get(i);
                if (inside) {
                    dv.add(i, g * s.s());
                }
                ds += g * (inside ? u - w.get(i) / s.s() : Math.clamp(u, minCode, maxCode));
            }
            dAlpha.add(from / gs, ds * s.dAlpha());
            dBeta.add(from / gs, ds * s.dBeta());
        });
    }

    /** round(w/s + V) for element i, before the clamp; each step rounded to w's precision, as torch does. */
    private static double rounded(Tensor w, Tensor v, int i, double s) {
        return Math.rint(w.narrow(w.narrow(w.get(i) / s) + v.get(i)));
    }

    private interface GroupBody {
        void run(int from, Scale s);
    }

    /**
     * Calls body once per group with the group's scale (group index = from / G), rows in parallel: a body writes
     * only its own group's elements.
     */
    private void forEachGroup(Tensor w, Tensor alpha, Tensor beta, GroupBody body) {
        int cols = w.cols();
        int g = group(cols);
        Parallel.forRange(w.rows(), cols, (rowFrom, rowTo) -> {
            for (int from = rowFrom * cols; from < rowTo * cols; from += g) {
                double wmin = 0;
                double wmax = 0;
                for (int i = from; i < from + g; i++) {
                    double wi = w.get(i);
                    if (!Double.isFinite(wi)) {
                        throw new IllegalArgumentException(
                                "weight [" + i / cols + ", " + i % cols + "] is " + wi + "; cannot quantize");
                    }
                    wmin = Math.min(wmin, wi);
                    wmax = Math.max(wmax, wi);
                }
                int group = from / g;
                body.run(from, scale(w, wmin, wmax, alpha.get(group), beta.get(group)));
            }
        });
    }

    /**
     * {@link #forEachGroup} on fp32 weights' array, with the same scales: a group's min and max (each including
     * the starting +0) over lanes, then the lanes reduced, then the scalar tail. Math.min and max, which the
     * lanewise operations follow, order −0 below +0 and see no NaN here (a non-finite weight is rejected), so they
     * are a total order's min and max and the order of the elements does not change them.
     */
    private void forEachGroupF32(Tensor.F32 wt, Tensor alpha, Tensor beta, GroupBody body) {
        float[] w = wt.data();
        int cols = wt.cols();
        int g = group(cols);
        Parallel.forRange(wt.rows(), cols, (rowFrom, rowTo) -> {
            for (int from = rowFrom * cols; from < rowTo * cols; from += g) {
                FloatVector vmin = FloatVector.zero(F);
                FloatVector vmax = vmin;
                VectorMask<Float> finite = F.maskAll(true);
                int i = from;
                for (; i <= from + g - F.length(); i += F.length()) {
                    FloatVector x = FloatVector.fromArray(F, w, i);
                    finite = finite.and(x.test(VectorOperators.IS_FINITE));
                    vmin = vmin.min(x);
                    vmax = vmax.max(x);
                }
                if (!finite.allTrue()) {
                    i = from; // the scalar loop below finds the element and names it
                }
                float wmin = vmin.reduceLanes(VectorOperators.MIN);
                float wmax = vmax.reduceLanes(VectorOperators.MAX);
                for (; i < from + g; i++) {
                    float wi = w[i];
                    if (!Float.isFinite(wi)) {
                        throw new IllegalArgumentException(
                                "weight [" + i / cols + ", " + i % cols + "] is " + wi + "; cannot quantize");
                    }
                    wmin = Math.min(wmin, wi);
                    wmax = Math.max(wmax, wi);
                }
                int group = from / g;
                body.run(from, scale(wt, wmin, wmax, alpha.get(group), beta.get(group)));
            }
        });
    }

    private void checkShapes(Tensor w, Tensor v, Tensor alpha, Tensor beta) {
        int g = group(w.cols());
        if (w.cols() % g != 0) {
            throw new IllegalArgumentException(
                    "weight [" + w.rows() + ", " + w.cols() + "] is not a whole number of groups of " + g);
        }
        v.requireShape(w.rows(), w.cols(), "V");
        alpha.requireShape(w.rows(), w.cols() / g, "α");
        beta.requireShape(w.rows(), w.cols() / g, "β");
    }

    /** x rounded to fp32, then to the nearest fp16 (ties to even), as torch's {@code .to(float16)} of a float. */
    private static double fp16(double x) {
        return Float.float16ToFloat(Float.floatToFloat16((float) x));
    }
}
