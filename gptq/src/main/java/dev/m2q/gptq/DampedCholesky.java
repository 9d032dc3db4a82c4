package dev.m2q.gptq;

import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.Parallel;
import java.util.Arrays;
import java.util.OptionalInt;
import java.util.stream.IntStream;

/**
 * From the Hessian H to U, the upper Cholesky factor of (H + λ·mean(diag H)·I)⁻¹, which the GPTQ loop reads
 * (ALGORITHMS.md §2): dead inputs first (H_kk = 0 → H_kk = 1; the caller zeroes W[:, k]), then dampening, then
 * the factorization, raising λ by 0.01 after each failure while λ < 1.
 *
 * <p>How U is obtained. With J the reversal permutation (J = Jᵀ = J⁻¹), factor JHJ = L·Lᵀ (L lower). Then
 * H⁻¹ = J·L⁻ᵀ·L⁻¹·J = (J·L⁻¹·J)ᵀ·(J·L⁻¹·J), and J·L⁻¹·J is upper triangular with a positive diagonal: it is the
 * upper Cholesky factor of H⁻¹, by uniqueness. That is the textbook "Cholesky, inverse, Cholesky again" in one
 * factorization and one triangular inversion, and the only step that can fail is the first.
 *
 * <p>In place in a single K² buffer (the copy of H that becomes U): the strict upper triangle holds JHJ and is
 * only read, the lower triangle receives L⁻¹ from {@link GptqKernels#choleskyInverse} (fp32 at the first λ, fp64
 * once λ has had to rise), and a retry needs only the saved diagonal. Every implementation writes each output
 * element from one thread in a fixed order, so the result is the same bits whatever the thread count.
 */
public final class DampedCholesky {
    /** How far λ is raised after each failed factorization. */
    public static final double DAMP_STEP = 0.01;

    /**
     * @param hinvUpper U [K, K] row-major fp32, upper triangular (strict lower triangle 0), UᵀU = (H + λ·m·I)⁻¹
     * @param dampUsed the λ that succeeded
     * @param retries failed factorizations before it
     * @param deadColumns input channels with H_kk = 0, ascending; the caller zeroes W[:, k] for each
     */
    public record Result(float[] hinvUpper, double dampUsed, int retries, int[] deadColumns) {}

    private DampedCholesky() {}

    /** {@link #factor(float[], int, double, GptqKernels)} with the default kernels. */
    public static Result factor(float[] h, int k, double damp) {
        return factor(h, k, damp, Kernels.fromProperty());
    }

    /** {@link #factor(float[], int, double, GptqKernels)} with the GPTQ kernels of {@code kernels}. */
    public static Result factor(float[] h, int k, double damp, Kernels kernels) {
        return factor(h, k, damp, GptqKernels.of(kernels));
    }

    /**
     * @param h H [K, K] row-major fp32, symmetric; not modified
     * @param damp the first λ to try, in [0, 1)
     * @throws IllegalArgumentException when H has a non-finite entry, or stays non-positive-definite for every
     *     λ below 1
     */
    public static Result factor(float[] h, int k, double damp, GptqKernels kernels) {
        if (k <= 0 || h.length != (long) k * k) {
            throw new IllegalArgumentException("H must be [" + k + ", " + k + "], got " + h.length + " values");
        }
        if (!(damp >= 0 && damp < 1)) {
            throw new IllegalArgumentException("damp " + damp + " must be in [0, 1)");
        }
        // The first non-finite entry in index order: the first row holding one (an ordered parallel search), then
        // its column.
        OptionalInt bad = IntStream.range(0, k)
                .parallel()
                .filter(p -> IntStream.range(0, k).anyMatch(q -> !Float.isFinite(h[p * k + q])))
                .findFirst();
        if (bad.isPresent()) {
            int p = bad.getAsInt();
            int q = IntStream.range(0, k)
                    .filter(c -> !Float.isFinite(h[p * k + c]))
                    .findFirst()
                    .orElseThrow();
            throw nonFiniteEntry((long) p * k + q, k, h[p * k + q]);
        }
        // a = JHJ: a[p, q] = h[K−1−p, K−1−q].
        float[] a = new float[k * k];
        Parallel.forRange(k, k, (from, to) -> {
            for (int p = from; p < to; p++) {
                int src = (k - 1 - p) * k + (k - 1);
                int dst = p * k;
                for (int q = 0; q < k; q++) {
                    a[dst + q] = h[src - q];
                }
            }
        });
        float[] hDiag = new float[k];
        for (int i = 0; i < k; i++) {
            hDiag[i] = h[i * k + i];
        }
        int[] dead = deadColumnsOfDiagonal(hDiag);
        float[] diag = shiftedDiagonal(hDiag);
        Damping d = damp(diag, damp, (shift, fp64) -> kernels.choleskyInverse(a, diag, shift, k, fp64));
        reverseLowerIntoUpper(a, k);
        return new Result(a, d.lambda(), d.retries(), dead);
    }

    /** One factorization at {@code shift}, as {@link GptqKernels#choleskyInverse}: false leaves its input to retry. */
    @FunctionalInterface
    public interface Attempt {
        boolean factor(float shift, boolean fp64);
    }

    /**
     * The λ that succeeded and the failures before it.
     *
     * @param lambda the dampening fraction used
     * @param retries failed factorizations before it
     */
    public record Damping(double lambda, int retries) {}

    /**
     * The retry policy of {@link #factor}, for any holder of JHJ: the shift is λ·mean(diag) (mean in double, in
     * diag's order), λ = damp, then damp + {@link #DAMP_STEP}·r after r failures, fp32 at the first λ and fp64
     * after, until an attempt succeeds.
     *
     * @param diag JHJ's diagonal with dead entries set to 1 ({@link #shiftedDiagonal})
     * @throws IllegalArgumentException when every λ below 1 fails
     */
    public static Damping damp(float[] diag, double damp, Attempt attempt) {
        int k = diag.length;
        double sum = 0;
        for (int p = 0; p < k; p++) {
            sum += diag[p];
        }
        double mean = sum / k;
        int retries = 0;
        double lambda = damp;
        // fp32 first; once damping has to rise, the factorization is redone in fp64 (rounded to fp32 at the end).
        while (!attempt.factor((float) (lambda * mean), retries > 0)) {
            retries++;
            lambda = damp + DAMP_STEP * retries;
            if (lambda >= 1) {
                throw new IllegalArgumentException(String.format(
                        "the Hessian is not positive definite even with damp %.2f (tried %d values from %s): the"
                                + " calibration data is degenerate or corrupt for this layer",
                        damp + DAMP_STEP * (retries - 1), retries, damp));
            }
        }
        return new Damping(lambda, retries);
    }

    /**
     * The diagonal the factorization shifts, from H's (hDiag[i] = H[i, i]): JHJ's, so position p holds
     * hDiag[K−1−p], with a dead entry (0) set to 1.
     */
    public static float[] shiftedDiagonal(float[] hDiag) {
        int k = hDiag.length;
        float[] diag = new float[k];
        for (int p = 0; p < k; p++) {
            float v = hDiag[k - 1 - p];
            diag[p] = v == 0f ? 1f : v;
        }
        return diag;
    }

    /** The failure for H's entry e = row·K + column that is not finite. */
    public static IllegalArgumentException nonFiniteEntry(long e, int k, float value) {
        return new IllegalArgumentException("Hessian entry [" + e / k + ", " + e % k + "] is " + value
                + ": the calibration activations overflowed or contain NaN; no dampening can fix that");
    }

    /** Input channels whose H_kk is exactly 0 (never active in the calibration data). */
    public static int[] deadColumns(float[] h, int k) {
        return IntStream.range(0, k).filter(i -> h[i * k + i] == 0f).toArray();
    }

    /** {@link #deadColumns} from H's diagonal alone: the i with diag[i] exactly 0. */
    public static int[] deadColumnsOfDiagonal(float[] diag) {
        return IntStream.range(0, diag.length).filter(i -> diag[i] == 0f).toArray();
    }

    /** U = J·X·J: U[p, q] = X[K−1−p, K−1−q], moved from the lower triangle to the upper; the lower becomes 0. */
    private static void reverseLowerIntoUpper(float[] a, int k) {
        // Rows over threads: the writes (strict upper triangle) and the reads (strict lower) never meet.
        Parallel.forRange(k, k / 2, (from, to) -> {
            for (int p = from; p < to; p++) {
                for (int q = p + 1; q < k; q++) {
                    a[p * k + q] = a[(k - 1 - p) * k + (k - 1 - q)];
                }
            }
        });
        for (int p = 0; p < k / 2; p++) {
            int r = k - 1 - p;
            float t = a[p * k + p];
            a[p * k + p] = a[r * k + r];
            a[r * k + r] = t;
        }
        Parallel.forRange(k, k / 2, (from, to) -> {
            for (int p = Math.max(1, from); p < to; p++) {
                Arrays.fill(a, p * k, p * k + p, 0f);
            }
        });
    }
}
