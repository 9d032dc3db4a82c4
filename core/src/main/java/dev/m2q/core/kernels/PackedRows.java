package dev.m2q.core.kernels;

import java.util.Arrays;

/**
 * Independent sequences packed into the rows of one forward, the layout of {@link Backend#ropePacked} and {@link
 * Backend#attentionPacked}: row r is at RoPE position {@code position(r)} and attends to the key rows
 * [{@code prefixStart(r)}, {@code prefixEnd(r)}) and then [{@code segmentStart(r)}, r], in that order (increasing
 * row). A sequence's first rows form a segment with no prefix (plain causal attention from its first row); a
 * continuation of it is a segment whose prefix is those rows, so several continuations of one context share the
 * context's rows, each seeing the context and itself but not the others. The keys of a row are visited in the order
 * a KV cache would hold them (prefix, then own segment), so an attention that sums them in order gives the bits of
 * the cached forward.
 *
 * <p>Invariants, checked on construction: for every row, 0 ≤ prefixStart ≤ prefixEnd ≤ segmentStart ≤ r and
 * position ≥ 0. Immutable.
 */
public final class PackedRows {
    /** [rows] RoPE position of each row. */
    private final int[] positions;
    /** [rows] first key row of each row's prefix. */
    private final int[] prefixStart;
    /** [rows] end (exclusive) of each row's prefix. */
    private final int[] prefixEnd;
    /** [rows] first row of each row's own segment. */
    private final int[] segmentStart;

    private final int maxVisible;

    /**
     * @param positions [rows] RoPE position of each row
     * @param prefixStart [rows] first key row of the row's prefix
     * @param prefixEnd [rows] end (exclusive) of the row's prefix; equal to prefixStart for no prefix
     * @param segmentStart [rows] first row of the row's own segment
     * @throws IllegalArgumentException when the lengths differ or a row breaks the invariants, naming it
     */
    public PackedRows(int[] positions, int[] prefixStart, int[] prefixEnd, int[] segmentStart) {
        int rows = positions.length;
        if (prefixStart.length != rows || prefixEnd.length != rows || segmentStart.length != rows) {
            throw new IllegalArgumentException("packed rows: positions " + rows + ", prefixStart "
                    + prefixStart.length + ", prefixEnd " + prefixEnd.length + ", segmentStart "
                    + segmentStart.length + " rows: they must be equal");
        }
        this.positions = positions.clone();
        this.prefixStart = prefixStart.clone();
        this.prefixEnd = prefixEnd.clone();
        this.segmentStart = segmentStart.clone();
        int most = 0;
        for (int r = 0; r < rows; r++) {
            int a = this.prefixStart[r];
            int b = this.prefixEnd[r];
            int s = this.segmentStart[r];
            if (a < 0 || a > b || b > s || s > r || this.positions[r] < 0) {
                throw new IllegalArgumentException("packed row " + r + ": prefix [" + a + ", " + b + "), segment from "
                        + s + ", position " + this.positions[r]
                        + " (need 0 <= prefixStart <= prefixEnd <= segmentStart <= row and position >= 0)");
            }
            most = Math.max(most, visible(r));
        }
        this.maxVisible = most;
    }

    /** A builder that appends sequences and continuations of them, row by row. */
    public static Builder builder() {
        return new Builder();
    }

    /** Number of rows. */
    public int rows() {
        return positions.length;
    }

    public int position(int r) {
        return positions[r];
    }

    public int prefixStart(int r) {
        return prefixStart[r];
    }

    public int prefixEnd(int r) {
        return prefixEnd[r];
    }

    public int segmentStart(int r) {
        return segmentStart[r];
    }

    /** How many key rows row r sees: its prefix and its segment up to itself. */
    public int visible(int r) {
        return prefixEnd[r] - prefixStart[r] + r - segmentStart[r] + 1;
    }

    /** The largest {@link #visible} over the rows (0 for no rows). */
    public int maxVisible() {
        return maxVisible;
    }

    /** The key row of row r's j-th visible key, j in [0, visible(r)): the prefix's rows, then the segment's. */
    public int key(int r, int j) {
        int p = prefixEnd[r] - prefixStart[r];
        return j < p ? prefixStart[r] + j : segmentStart[r] + (j - p);
    }

    /** [rows] the positions (a copy). */
    public int[] positions() {
        return positions.clone();
    }

    /**
     * [rows, 3] row-major: prefixStart, prefixEnd, segmentStart of each row, the table a device kernel reads (a new
     * array).
     */
    public int[] spans() {
        int[] s = new int[3 * positions.length];
        for (int r = 0; r < positions.length; r++) {
            s[3 * r] = prefixStart[r];
            s[3 * r + 1] = prefixEnd[r];
            s[3 * r + 2] = segmentStart[r];
        }
        return s;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof PackedRows p
                && Arrays.equals(positions, p.positions)
                && Arrays.equals(prefixStart, p.prefixStart)
                && Arrays.equals(prefixEnd, p.prefixEnd)
                && Arrays.equals(segmentStart, p.segmentStart);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(positions) * 31 + Arrays.hashCode(segmentStart);
    }

    @Override
    public String toString() {
        return "PackedRows[" + rows() + " rows, at most " + maxVisible + " keys per row]";
    }

    /** Appends segments row by row. */
    public static final class Builder {
        private int[] positions = new int[16];
        private int[] prefixStart = new int[16];
        private int[] prefixEnd = new int[16];
        private int[] segmentStart = new int[16];
        private int rows;

        private Builder() {}

        /** Rows added so far. */
        public int rows() {
            return rows;
        }

        /**
         * Appends a sequence of {@code length} rows at positions {@code startPosition}.., causal within itself and
         * seeing nothing else.
         *
         * @return its first row
         */
        public int sequence(int length, int startPosition) {
            return continuation(rows, rows, length, startPosition);
        }

        /**
         * Appends {@code length} rows at positions {@code startPosition}.. that see the rows [{@code prefixStart},
         * {@code prefixEnd}) added before (a context they continue) and then themselves causally; a continuation of
         * a context of n rows at positions 0.. starts at position n.
         *
         * @return its first row
         */
        public int continuation(int prefixStart, int prefixEnd, int length, int startPosition) {
            if (length < 0 || startPosition < 0 || prefixStart < 0 || prefixStart > prefixEnd || prefixEnd > rows) {
                throw new IllegalArgumentException("continuation of " + length + " rows at position " + startPosition
                        + " after prefix [" + prefixStart + ", " + prefixEnd + ") of " + rows + " rows");
            }
            int first = rows;
            grow(rows + length);
            for (int t = 0; t < length; t++) {
                positions[rows] = Math.addExact(startPosition, t);
                this.prefixStart[rows] = prefixStart;
                this.prefixEnd[rows] = prefixEnd;
                segmentStart[rows] = first;
                rows++;
            }
            return first;
        }

        private void grow(int n) {
            if (n > positions.length) {
                int cap = Math.max(n, 2 * positions.length);
                positions = Arrays.copyOf(positions, cap);
                prefixStart = Arrays.copyOf(prefixStart, cap);
                prefixEnd = Arrays.copyOf(prefixEnd, cap);
                segmentStart = Arrays.copyOf(segmentStart, cap);
            }
        }

        public PackedRows build() {
            return new PackedRows(
                    Arrays.copyOf(positions, rows),
                    Arrays.copyOf(prefixStart, rows),
                    Arrays.copyOf(prefixEnd, rows),
                    Arrays.copyOf(segmentStart, rows));
        }
    }
}
