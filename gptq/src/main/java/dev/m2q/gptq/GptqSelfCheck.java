package dev.m2q.gptq;

import dev.m2q.core.kernels.KernelSelfCheck;
import dev.m2q.core.kernels.Kernels;
import java.util.List;
import java.util.Optional;
import java.util.SplittableRandom;

/**
 * The self-check probes of GPTQ's own kernels ({@link GptqKernels}), which core's {@link KernelSelfCheck} runs
 * after its own before a backend is trusted: a backend's {@link GptqKernels#of GPTQ kernels} against {@link
 * JavaGptqKernels} on the Java reference. Registered through META-INF/services.
 */
public final class GptqSelfCheck implements KernelSelfCheck.Probes {
    private static final long SEED = 0x6a7c_5e1fL;

    @Override
    public List<KernelSelfCheck.Probe> probes() {
        return List.of(
                probe("choleskyInverse", GptqSelfCheck::choleskyInverse),
                probe("columnLoop", GptqSelfCheck::columnLoop));
    }

    private interface Body {
        Optional<String> run(GptqKernels candidate, GptqKernels reference);
    }

    private static KernelSelfCheck.Probe probe(String name, Body body) {
        return new KernelSelfCheck.Probe() {
            @Override
            public String kernel() {
                return name;
            }

            @Override
            public Optional<String> run(Kernels candidate, Kernels reference) {
                return body.run(GptqKernels.of(candidate), new JavaGptqKernels(reference));
            }
        };
    }

    /**
     * An SPD matrix shifted by 5% of its mean diagonal (condition number below ~100), at one ragged size and one
     * block plus a row (65), in both precisions; then a matrix with a negative pivot, which both must refuse
     * leaving diag and the strict upper triangle unchanged. fp32: the candidate may factor in another order than
     * the twin, each within ~κ·k·2⁻²⁴ of the exact L⁻¹, so the two agree to ‖X − X_twin‖_F / ‖X_twin‖_F ≤ 2e-4
     * (the GPU tests' bound); fp64 rounds the exact result to fp32 once: ≤ 2e-6. The strict upper triangle is 0.
     */
    static Optional<String> choleskyInverse(GptqKernels cand, GptqKernels ref) {
        SplittableRandom rng = new SplittableRandom(SEED);
        for (int k : new int[] {24, 65}) {
            float[] h = spd(rng, k);
            float[] diag = new float[k];
            double mean = 0;
            for (int i = 0; i < k; i++) {
                diag[i] = h[i * k + i];
                mean += diag[i] / k;
            }
            float shift = (float) (0.05 * mean);
            for (boolean fp64 : new boolean[] {false, true}) {
                String what = "(k " + k + (fp64 ? ", fp64)" : ", fp32)");
                float[] want = h.clone();
                float[] got = h.clone();
                if (!ref.choleskyInverse(want, diag.clone(), shift, k, fp64)) {
                    return Optional.of(what + ": the Java reference refused an SPD matrix");
                }
                if (!cand.choleskyInverse(got, diag.clone(), shift, k, fp64)) {
                    return Optional.of(what + ": refused an SPD matrix the Java kernels factor");
                }
                double num = 0;
                double den = 0;
                for (int i = 0; i < k; i++) {
                    for (int j = 0; j < k; j++) {
                        float g = got[i * k + j];
                        if (j > i && g != 0f) {
                            return Optional.of(what + ": strict upper [" + i + ", " + j + "] = " + g + ", not 0");
                        }
                        double d = (double) g - want[i * k + j];
                        num += Double.isNaN(d) ? Double.POSITIVE_INFINITY : d * d;
                        den += (double) want[i * k + j] * want[i * k + j];
                    }
                }
                double rel = Math.sqrt(num / den);
                double tol = fp64 ? 2e-6 : 2e-4;
                if (!(rel <= tol)) {
                    return Optional.of(what + ": L⁻¹ differs from the Java kernels' by " + rel
                            + " (relative Frobenius), tolerance " + tol);
                }
            }
            float[] bad = h.clone();
            float[] badDiag = diag.clone();
            badDiag[k / 2] = -1f;
            float[] before = bad.clone();
            if (cand.choleskyInverse(bad, badDiag.clone(), 0f, k, false)) {
                return Optional.of("(k " + k + ", a negative pivot): accepted a matrix that is not positive definite");
            }
            for (int i = 0; i < k; i++) {
                for (int j = i + 1; j < k; j++) {
                    if (Float.compare(bad[i * k + j], before[i * k + j]) != 0) {
                        return Optional.of("(k " + k + ", a negative pivot): strict upper [" + i + ", " + j
                                + "] changed on refusal");
                    }
                }
            }
        }
        return Optional.empty();
    }

    /**
     * The column loop on one problem with act-order (a seeded permutation) and groups that start inside blocks
     * (G 32, B 24): g_idx is exact; codes may differ only where another rounding of an update flips a tie
     * w/s = m + ½, at most 2 of the 1,536 (the GPU tests allow 0.1%); each scale within 1e-3 relative, one fp16 ulp
     * (2⁻¹⁰) of Rtn.scale's rounding, which a tie in the absmax's last bit can move.
     */
    static Optional<String> columnLoop(GptqKernels cand, GptqKernels ref) {
        SplittableRandom rng = new SplittableRandom(SEED + 1);
        int k = 64;
        int n = 24;
        int g = 32;
        int b = 24;
        float[] h = spd(rng, k);
        float[] w1 = new float[k * n];
        for (int i = 0; i < w1.length; i++) {
            w1[i] = (float) (rng.nextDouble() * 2 - 1);
        }
        int[] perm = ActOrder.permutation(h, k);
        float[] w1p = ActOrder.permuteRows(w1, k, n, perm);
        float[] u = DampedCholesky.factor(ActOrder.permuteSymmetric(h, k, perm), k, 0.01, ref)
                .hinvUpper();
        GptqCodes want = ref.columnLoop(new GptqProblem(w1p.clone(), u, k, n, g, b, perm, null));
        GptqCodes got = cand.columnLoop(new GptqProblem(w1p.clone(), u, k, n, g, b, perm, null));
        for (int i = 0; i < want.gIdx().length; i++) {
            if (want.gIdx()[i] != got.gIdx()[i]) {
                return Optional.of("(k 64, act-order): g_idx[" + i + "] = " + got.gIdx()[i]
                        + " where the Java kernels give " + want.gIdx()[i] + " (bit-exact)");
            }
        }
        int differ = 0;
        for (int i = 0; i < want.codes().length; i++) {
            if (got.codes()[i] < 0 || got.codes()[i] > 15) {
                return Optional.of("(k 64, act-order): code " + i + " = " + got.codes()[i] + ", outside 0..15");
            }
            differ += got.codes()[i] == want.codes()[i] ? 0 : 1;
        }
        if (differ > 2) {
            return Optional.of("(k 64, act-order): " + differ + " of " + want.codes().length
                    + " codes differ from the Java kernels' (rounding ties allow 2)");
        }
        for (int i = 0; i < want.scales().length; i++) {
            float s = got.scales()[i];
            float r = want.scales()[i];
            if (!(Math.abs(s - r) <= 1e-3 * Math.abs(r))) {
                return Optional.of("(k 64, act-order): scales[" + i + "] = " + s + " where the Java kernels give " + r
                        + ", tolerance 1e-3 relative");
            }
        }
        return Optional.empty();
    }

    /** XᵀX/m + I over m = 2k seeded rows: symmetric positive definite, well conditioned. */
    private static float[] spd(SplittableRandom rng, int k) {
        int m = 2 * k;
        double[] x = new double[m * k];
        for (int i = 0; i < x.length; i++) {
            x[i] = rng.nextDouble() * 2 - 1;
        }
        float[] h = new float[k * k];
        for (int i = 0; i < k; i++) {
            for (int j = 0; j < k; j++) {
                double s = i == j ? 1 : 0;
                for (int r = 0; r < m; r++) {
                    s += x[r * k + i] * x[r * k + j] / m;
                }
                h[i * k + j] = (float) s;
            }
        }
        return h;
    }
}
