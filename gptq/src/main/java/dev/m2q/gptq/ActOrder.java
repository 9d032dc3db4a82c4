package dev.m2q.gptq;

import java.util.Arrays;
import java.util.Comparator;

/**
 * GPTQ's act-order: quantize the input channels with the largest Hessian diagonal (the most activation energy)
 * first, while the most other columns remain to absorb their error.
 *
 * <p>Conventions: {@code perm[i]} is the original index of the column at position i; permuting a matrix puts
 * original column perm[i] at position i, and permuting with {@link #inverse} undoes it.
 */
public final class ActOrder {
    private ActOrder() {}

    /** Column indices by descending diag(H), ties in index order (stable). h [K, K] row-major. */
    public static int[] permutation(float[] h, int k) {
        if (h.length != (long) k * k) {
            throw new IllegalArgumentException("H must be [" + k + ", " + k + "], got " + h.length + " values");
        }
        float[] diag = new float[k];
        for (int i = 0; i < k; i++) {
            diag[i] = h[i * k + i];
        }
        return permutationOfDiagonal(diag);
    }

    /**
     * {@link #permutation} from H's diagonal alone (diag[i] = H[i, i]), for a backend that holds H and reads out
     * only its diagonal.
     */
    public static int[] permutationOfDiagonal(float[] diag) {
        int k = diag.length;
        Integer[] idx = new Integer[k];
        for (int i = 0; i < k; i++) {
            idx[i] = i;
        }
        Arrays.sort(idx, Comparator.comparingDouble((Integer i) -> diag[i]).reversed());
        int[] perm = new int[k];
        for (int i = 0; i < k; i++) {
            perm[i] = idx[i];
        }
        return perm;
    }

    /** inv[perm[i]] = i. */
    public static int[] inverse(int[] perm) {
        int[] inv = new int[perm.length];
        Arrays.fill(inv, -1);
        for (int i = 0; i < perm.length; i++) {
            if (perm[i] < 0 || perm[i] >= perm.length || inv[perm[i]] >= 0) {
                throw new IllegalArgumentException("not a permutation: index " + perm[i] + " at " + i);
            }
            inv[perm[i]] = i;
        }
        return inv;
    }

    /** out[i, :] = a[perm[i], :] for a [rows, cols] row-major. */
    public static float[] permuteRows(float[] a, int rows, int cols, int[] perm) {
        requirePerm(perm, rows);
        float[] out = new float[a.length];
        for (int i = 0; i < rows; i++) {
            System.arraycopy(a, perm[i] * cols, out, i * cols, cols);
        }
        return out;
    }

    /** out[:, i] = w[:, perm[i]] for w [rows, cols] row-major (W [N, K]: permutes input channels). */
    public static float[] permuteColumns(float[] w, int rows, int cols, int[] perm) {
        requirePerm(perm, cols);
        float[] out = new float[w.length];
        for (int r = 0; r < rows; r++) {
            int base = r * cols;
            for (int i = 0; i < cols; i++) {
                out[base + i] = w[base + perm[i]];
            }
        }
        return out;
    }

    /** out[i, j] = h[perm[i], perm[j]] for h [K, K]: rows and columns together. */
    public static float[] permuteSymmetric(float[] h, int k, int[] perm) {
        requirePerm(perm, k);
        float[] out = new float[h.length];
        for (int i = 0; i < k; i++) {
            int src = perm[i] * k;
            int dst = i * k;
            for (int j = 0; j < k; j++) {
                out[dst + j] = h[src + perm[j]];
            }
        }
        return out;
    }

    private static void requirePerm(int[] perm, int n) {
        if (perm.length != n) {
            throw new IllegalArgumentException("permutation of " + perm.length + " for a dimension of " + n);
        }
    }
}
