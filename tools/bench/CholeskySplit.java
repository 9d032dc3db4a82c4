package dev.m2q.gptq;

import dev.m2q.core.kernels.Kernels;
import java.util.Arrays;

/**
 * The two halves of GPTQ's fp32 Cholesky inverse timed apart: {@code JavaCholesky.choleskyLower} (A = L·Lᵀ) and
 * {@code invertLowerInPlace} (L⁻¹), on the SPD matrix of gptq's CholeskyBench (seeded, diagonally dominant), best
 * of REPS in one JVM; K³/3 flops each. It sits in JavaCholesky's package, so it is compiled onto the class path
 * (an A/B puts another build's JavaCholesky.class ahead of it):
 *
 * <pre>
 * ./mvnw -q -o -pl gptq -am compile -Dm2q.nvcc.skip=true
 * CP=gptq/target/classes:core/target/classes
 * javac --add-modules jdk.incubator.vector -cp $CP -d target/cholesky-split tools/bench/CholeskySplit.java
 * java --add-modules jdk.incubator.vector -Xmx14g -cp target/cholesky-split:$CP dev.m2q.gptq.CholeskySplit 27648 1
 * </pre>
 */
public final class CholeskySplit {
    public static void main(String[] args) {
        int k = Integer.parseInt(args[0]);
        int reps = Integer.parseInt(args[1]);
        Kernels kernels = Kernels.byName(args.length > 2 ? args[2] : "vector");
        float[] a = new float[k * k];
        float[] diag = new float[k];
        Arrays.fill(diag, 1f);
        long state = 42;
        for (int i = 0; i < k; i++) {
            for (int j = i + 1; j < k; j++) {
                state = state * 6364136223846793005L + 1442695040888963407L;
                a[i * k + j] = (float) (((state >>> 40) / (double) (1L << 24) - 0.5) / k);
            }
        }
        double bestFactor = Double.MAX_VALUE;
        double bestInverse = Double.MAX_VALUE;
        for (int r = 0; r < reps; r++) {
            float[] b = a.clone();
            long t0 = System.nanoTime();
            if (!JavaCholesky.choleskyLower(b, diag, 0f, k, kernels)) {
                throw new IllegalStateException("not positive definite");
            }
            long t1 = System.nanoTime();
            JavaCholesky.invertLowerInPlace(b, k, kernels);
            long t2 = System.nanoTime();
            bestFactor = Math.min(bestFactor, (t1 - t0) / 1e9);
            bestInverse = Math.min(bestInverse, (t2 - t1) / 1e9);
        }
        double gflop = (double) k * k * k / 3 / 1e9;
        System.out.printf(
                "K=%d factor %.2f s (%.0f GFLOP/s), inverse %.2f s (%.0f GFLOP/s), best of %d%n",
                k, bestFactor, gflop / bestFactor, bestInverse, gflop / bestInverse, reps);
    }
}
