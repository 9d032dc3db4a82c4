package dev.m2q.autoround;

import dev.m2q.core.grad.LayerParams;
import dev.m2q.core.grad.Tensor;
import dev.m2q.core.quant.GroupSize;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * SignRound's trainable parameters of one decoder layer, per quantized linear W [out, in]: the rounding offset
 * V [out, in] and the clip factors α, β [out, in/G] on the group minimum and maximum ({@code FakeQuantizer}).
 */
public final class RoundingParams {
    /**
     * One linear's parameters (or, same shapes, their gradients), fp32.
     *
     * @param v [out, in], the offset added inside the rounding
     * @param alpha [out, in/G], the factor on the group minimum
     * @param beta [out, in/G], the factor on the group maximum
     */
    public record Linear(Tensor v, Tensor alpha, Tensor beta) {}

    private final Map<String, Linear> byModule;

    private RoundingParams(Map<String, Linear> byModule) {
        this.byModule = byModule;
    }

    /** SignRound's starting point for the given linears of {@code layer}: V = 0, α = β = 1 (RTN). */
    public static RoundingParams initial(LayerParams layer, List<String> modules, int groupSize) {
        Map<String, Linear> m = new LinkedHashMap<>();
        for (String module : modules) {
            Tensor w = layer.linear(module);
            int g = GroupSize.resolve(groupSize, w.cols());
            if (w.cols() % g != 0) {
                throw new IllegalArgumentException(
                        module + ": in_features " + w.cols() + " is not a multiple of the group size " + g);
            }
            Tensor alpha = Tensor.f32(w.rows(), w.cols() / g);
            Tensor beta = alpha.zerosLike();
            for (int i = 0; i < alpha.size(); i++) {
                alpha.set(i, 1);
                beta.set(i, 1);
            }
            m.put(module, new Linear(Tensor.f32(w.rows(), w.cols()), alpha, beta));
        }
        return new RoundingParams(m);
    }

    /** The linears, in the order given at creation. */
    public List<String> modules() {
        return List.copyOf(byModule.keySet());
    }

    public Linear get(String module) {
        Linear p = byModule.get(module);
        if (p == null) {
            throw new IllegalArgumentException("no rounding parameters for " + module + " (have " + modules() + ")");
        }
        return p;
    }
}
