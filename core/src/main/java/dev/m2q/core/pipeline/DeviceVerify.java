package dev.m2q.core.pipeline;

import dev.m2q.core.CheckFailedException;
import dev.m2q.core.quant.QuantizedLinear;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

/**
 * {@code --verify-device}: each freshly quantized layer is quantized again with the Java kernels on the same
 * calibration inputs, and the two layers' codes are compared. The whole layer is recomputed, not one linear: a
 * {@link LayerMethod} quantizes a layer as a unit (GPTQ's later linears see inputs that the layer's earlier ones
 * produced), so the check costs one CPU pass of the method per layer, as long as a {@code --device cpu} run. It
 * is a diagnostic for a device whose results are in doubt, not a default.
 *
 * <p>Codes can differ without a fault: another fp32 summation order in the layer's forward passes, or bf16
 * operands on tensor cores, move the Hessian a little, and with it the codes whose weights lie near a rounding
 * tie. The kernels module's CudaQuantizeGpuTest bounds those flips at 1% of the codes with fp32 products and 5%
 * with bf16 tensor cores (the default), over a whole model where they compound from layer to layer; one layer on
 * the same inputs sees fewer. A wrong kernel changes codes wholesale (a random code differs 15 times in 16), so a
 * layer is refused when more than {@link #MAX_DIFFERING} of its codes differ.
 */
public final class DeviceVerify {
    /** The most codes of one layer that may differ from the CPU's: the tensor-core tie-flip rate of the gpu tests. */
    public static final double MAX_DIFFERING = 0.05;

    private DeviceVerify() {}

    /**
     * Compares a layer's codes from the device with the CPU's; returns the line for the log.
     *
     * @param kernels the device kernels' name, for the message
     * @throws CheckFailedException when more than {@link #MAX_DIFFERING} of the layer's codes differ
     */
    public static String compare(
            int layer, String kernels, Map<String, QuantizedLinear> device, Map<String, QuantizedLinear> cpu) {
        long differ = 0;
        long total = 0;
        String worst = null;
        long worstDiffer = -1;
        long worstTotal = 0;
        for (Map.Entry<String, QuantizedLinear> e : new TreeMap<>(cpu).entrySet()) {
            QuantizedLinear want = e.getValue();
            QuantizedLinear got = device.get(e.getKey());
            if (got == null || got.codes().length != want.codes().length) {
                throw new IllegalStateException("layer " + layer + " " + e.getKey() + ": the device run has "
                        + (got == null ? "no such linear" : got.codes().length + " codes") + ", the CPU run "
                        + want.codes().length);
            }
            long d = 0;
            for (int i = 0; i < want.codes().length; i++) {
                d += want.codes()[i] == got.codes()[i] ? 0 : 1;
            }
            differ += d;
            total += want.codes().length;
            if (d > worstDiffer) {
                worst = e.getKey();
                worstDiffer = d;
                worstTotal = want.codes().length;
            }
        }
        String counted = String.format(
                Locale.ROOT,
                "layer %d: %d of %d codes (%.3f%%) differ from the CPU's on the same inputs",
                layer,
                differ,
                total,
                100.0 * differ / Math.max(1, total));
        if (differ > MAX_DIFFERING * total) {
            throw new CheckFailedException(String.format(
                    Locale.ROOT,
                    "--verify-device: %s, more than the %.0f%% that rounding ties can flip (most in %s: %d of %d);"
                            + " the %s kernels cannot be trusted on this machine: rerun with --device cpu",
                    counted,
                    100 * MAX_DIFFERING,
                    worst,
                    worstDiffer,
                    worstTotal,
                    kernels));
        }
        return "verify-device: " + counted;
    }
}
