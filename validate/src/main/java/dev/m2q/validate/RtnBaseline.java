package dev.m2q.validate;

import dev.m2q.core.kernels.Matrix;
import dev.m2q.core.model.Qwen2Model;
import dev.m2q.core.quant.Bits;
import dev.m2q.core.quant.GptqPacking;
import dev.m2q.core.quant.QuantizedLinear;
import dev.m2q.core.quant.Rtn;

/**
 * The comparison users expect beside any calibrated method: the reference's linears quantized on the fly with
 * round-to-nearest (ALGORITHMS.md §1, core's {@link Rtn}, fp16-rounded scales as the GPTQ layout stores them) at
 * the candidate's group size and bits, kept packed as {@link Matrix.W4} at 4 bits and dequantized to fp32 at 8 (there
 * is no 8-bit kernel).
 */
final class RtnBaseline {
    private RtnBaseline() {}

    static Qwen2Model.LinearTransform transform(int groupSize) {
        return transform(groupSize, Bits.FOUR);
    }

    static Qwen2Model.LinearTransform transform(int groupSize, Bits bits) {
        return (prefix, w) -> {
            int n = w.rows();
            int k = w.cols();
            int g = groupSize == -1 ? k : groupSize;
            QuantizedLinear q = Rtn.quantize(w.toFloatArray(), n, k, g, bits);
            return bits.value() == 4
                    ? Matrix.W4.of(GptqPacking.packQweight(q.codes(), k, n), q.scales(), q.gIdx(), n, k, g)
                    : new Matrix.F32(q.dequantize(), n, k);
        };
    }
}
