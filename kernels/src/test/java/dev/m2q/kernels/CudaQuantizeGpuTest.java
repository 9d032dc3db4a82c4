package dev.m2q.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.pipeline.LayerContext;
import dev.m2q.core.pipeline.LayerMethod;
import dev.m2q.core.pipeline.LayerResult;
import dev.m2q.core.pipeline.ProgressListener;
import dev.m2q.core.pipeline.QuantizeJob;
import dev.m2q.core.pipeline.QuantizeOptions;
import dev.m2q.core.pipeline.ReportRow;
import dev.m2q.core.quant.QuantizedLinear;
import dev.m2q.gptq.GptqMethod;
import dev.m2q.gptq.GptqOptions;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The bundled fixture quantized with GPTQ through the real pipeline (QuantizeJob, GptqMethod) on CUDA and on the
 * CPU, codes compared per linear. The pipeline feeds each layer the outputs of the already-quantized earlier
 * layers, so small differences in the forward passes (another fp32 summation order; bf16 operands on the tensor
 * cores) move the Hessians, and through them the codes near a rounding tie, more with every layer. The test
 * prints how many codes differ and bounds it, and holds each linear's GPTQ proxy loss near the CPU's.
 */
@Tag("gpu")
class CudaQuantizeGpuTest {
    static final Path FIXTURE = Path.of("..", "fixtures", "tiny-qwen2");

    /** GPTQ that records what it produced: codes by module, and the loss of each report row. */
    static final class Recording implements LayerMethod {
        final LayerMethod gptq = new GptqMethod(GptqOptions.DEFAULTS, true);
        final Map<String, QuantizedLinear> linears = new TreeMap<>();
        final Map<String, Double> losses = new TreeMap<>();

        @Override
        public String name() {
            return gptq.name();
        }

        @Override
        public LayerResult quantize(LayerContext ctx) {
            LayerResult r = gptq.quantize(ctx);
            r.linears().forEach((m, q) -> linears.put(ctx.config().arch().module(ctx.layer(), m), q));
            for (ReportRow row : r.report()) {
                losses.put(row.module(), row.loss());
            }
            return r;
        }
    }

    static Recording quantize(Path out, Kernels kernels) {
        SplittableRandom r = new SplittableRandom(41);
        List<int[]> samples = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            samples.add(r.ints(128, 0, 2045).toArray());
        }
        QuantizeOptions o = new QuantizeOptions(
                FIXTURE,
                out,
                128,
                samples.size(),
                128,
                7,
                1L << 30,
                4L << 30,
                4,
                false,
                false,
                Map.of(),
                List.of("test"),
                "test");
        Recording m = new Recording();
        new QuantizeJob(o, m, kernels, ProgressListener.NONE).run(samples, Map.of());
        return m;
    }

    /**
     * Differing codes, as printed: with fp32 forward passes (tensor cores off) the Hessians differ from the CPU's
     * by summation order only, and at most 1% of the codes may differ; with bf16 operands on the tensor cores
     * (the default) activations move by ~2⁻⁸ relative, and at most 5%. Each linear's proxy loss stays within 5%
     * (fp32) and 20% (bf16) of the CPU's: GPTQ's quality, not its exact ties, is what must carry over.
     */
    @Test
    void fixtureQuantizesOnCudaLikeOnTheCpu(@TempDir Path tmp) {
        Recording cpu = quantize(tmp.resolve("cpu"), Kernels.byName("vector"));
        assertEquals(56, cpu.linears.size(), "8 layers × 7 linears");
        for (boolean tensorCores : new boolean[] {false, true}) {
            CudaKernels kernels = new CudaKernels(
                    CudaContext.get(), Kernels.byName("vector"), CudaKernels.Policy.allOnDevice(tensorCores));
            Recording cuda = quantize(tmp.resolve("cuda-" + tensorCores), kernels);
            assertEquals(cpu.linears.keySet(), cuda.linears.keySet());
            long differ = 0;
            long total = 0;
            double worstLoss = 0;
            for (Map.Entry<String, QuantizedLinear> e : cpu.linears.entrySet()) {
                int[] want = e.getValue().codes();
                int[] got = cuda.linears.get(e.getKey()).codes();
                int d = 0;
                for (int i = 0; i < want.length; i++) {
                    d += want[i] == got[i] ? 0 : 1;
                }
                differ += d;
                total += want.length;
                double lc = cpu.losses.get(e.getKey());
                double lg = cuda.losses.get(e.getKey());
                double rel = Math.abs(lg - lc) / lc;
                worstLoss = Math.max(worstLoss, rel);
                System.out.printf(
                        "tensor cores %-5s %-32s %7d of %8d codes differ, loss %.6g vs %.6g on the CPU%n",
                        tensorCores, e.getKey(), d, want.length, lg, lc);
            }
            System.out.printf(
                    "tensor cores %s: %d of %d codes differ (%.3f%%), worst relative loss difference %.4f%n",
                    tensorCores, differ, total, 100.0 * differ / total, worstLoss);
            assertTrue(differ <= total * (tensorCores ? 0.05 : 0.01), differ + " of " + total + " codes differ");
            assertTrue(worstLoss <= (tensorCores ? 0.20 : 0.05), "worst relative loss difference " + worstLoss);
            kernels.clearCache();
        }
    }
}
