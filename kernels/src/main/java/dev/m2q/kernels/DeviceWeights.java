package dev.m2q.kernels;

/** A weight matrix resident on the device, as {@link WeightCache} keeps it. */
sealed interface DeviceWeights extends AutoCloseable permits DeviceWeights.Dense, DeviceWeights.Packed {
    /** Device bytes held. */
    long bytes();

    @Override
    void close();

    /**
     * {@link dev.m2q.core.kernels.Matrix.Bf16} or {@link dev.m2q.core.kernels.Matrix.F32}.
     *
     * @param w [N, K] row-major, bf16 bits or fp32
     */
    record Dense(DeviceBuffer w, boolean bf16) implements DeviceWeights {
        @Override
        public long bytes() {
            return w.bytes();
        }

        @Override
        public void close() {
            w.close();
        }
    }

    /**
     * {@link dev.m2q.core.kernels.Matrix.W4}.
     *
     * @param qweight [K/8, N] int32, the checkpoint's packed codes (what dequantization reads)
     * @param positions [K/8, N] int32, the codes in {@link W4Layout} position order: qweight itself when the
     *     layout is contiguous, else a repacked copy
     * @param scales [K/G, N] fp32
     * @param gIdx [K] int32
     * @param members [K] int32, see {@link W4Layout}
     * @param start [K/G + 1] int32
     */
    record Packed(
            DeviceBuffer qweight,
            DeviceBuffer positions,
            DeviceBuffer scales,
            DeviceBuffer gIdx,
            DeviceBuffer members,
            DeviceBuffer start,
            int groups,
            boolean contiguous)
            implements DeviceWeights {
        @Override
        public long bytes() {
            long b = qweight.bytes() + scales.bytes() + gIdx.bytes() + members.bytes() + start.bytes();
            return positions == qweight ? b : b + positions.bytes();
        }

        @Override
        public void close() {
            qweight.close();
            positions.close();
            scales.close();
            gIdx.close();
            members.close();
            start.close();
        }
    }
}
