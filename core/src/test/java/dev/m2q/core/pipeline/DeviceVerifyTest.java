package dev.m2q.core.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.CheckFailedException;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.Matrix;
import dev.m2q.core.quant.QuantizedLinear;
import dev.m2q.core.quant.Rtn;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * --verify-device on the CPU: a "device" that is the Java kernels under another name passes with no code
 * differing; one whose matmul is wrong stops the run with a {@link CheckFailedException} naming the layer and the
 * linear; the threshold is the stated tie-flip rate.
 */
class DeviceVerifyTest {
    /** RTN of each weight read through {@code ctx.kernels().matmul} (I·Wᵀ), so the codes follow the kernels. */
    static final class KernelRtn implements LayerMethod {
        int quantized;

        @Override
        public String name() {
            return "rtn";
        }

        @Override
        public LayerResult quantize(LayerContext ctx) {
            quantized++;
            Map<String, QuantizedLinear> q = new LinkedHashMap<>();
            for (String m : ctx.config().arch().linears()) {
                Matrix w = ctx.source().linear(m);
                int n = w.rows();
                int k = w.cols();
                float[] eye = new float[k * k];
                for (int i = 0; i < k; i++) {
                    eye[i * k + i] = 1f;
                }
                float[] wt = new float[k * n]; // [k, n] = Wᵀ
                ctx.kernels().matmul(eye, k, w, null, wt);
                float[] wf = new float[n * k];
                for (int i = 0; i < k; i++) {
                    for (int j = 0; j < n; j++) {
                        wf[j * k + i] = wt[i * n + j];
                    }
                }
                q.put(m, Rtn.quantize(wf, n, k, 128));
            }
            return new LayerResult(q, List.of());
        }
    }

    /** The scalar kernels under the name "cuda", with matmul's outputs negated when {@code wrong}. */
    static Kernels device(boolean wrong) {
        Kernels scalar = Kernels.byName("scalar");
        return (Kernels)
                Proxy.newProxyInstance(Kernels.class.getClassLoader(), new Class<?>[] {Kernels.class}, (p, m, a) -> {
                    if (m.getName().equals("name")) {
                        return "cuda";
                    }
                    Object r;
                    try {
                        r = m.invoke(scalar, a);
                    } catch (InvocationTargetException e) {
                        throw e.getCause();
                    }
                    if (wrong && m.getName().equals("matmul")) {
                        float[] y = (float[]) a[4];
                        for (int i = 0; i < y.length; i++) {
                            y[i] = -y[i];
                        }
                    }
                    return r;
                });
    }

    @Test
    void aDeviceThatAgreesPassesEveryLayerAndSaysSo(@TempDir Path tmp) {
        KernelRtn m = new KernelRtn();
        List<String> log = new ArrayList<>();
        new QuantizeJob(QuantizeJobTest.options(tmp.resolve("q"), 1L << 30), m, device(false), listener(log))
                .verifiedOn(Kernels.byName("vector"))
                .run(QuantizeJobTest.samples(), Map.of());
        List<String> verified =
                log.stream().filter(l -> l.startsWith("verify-device: ")).toList();
        assertEquals(8, verified.size(), log.toString());
        assertTrue(
                verified.getFirst()
                        .matches("verify-device: layer 0: 0 of \\d+ codes \\(0\\.000%\\) differ from"
                                + " the CPU's on the same inputs"),
                verified.getFirst());
        assertEquals(16, m.quantized, "each layer quantized twice");
    }

    @Test
    void aWrongDeviceStopsTheRunWithExitOneAndKeepsNothingUnfinished(@TempDir Path tmp) {
        Path out = tmp.resolve("q");
        CheckFailedException e = assertThrows(CheckFailedException.class, () -> new QuantizeJob(
                        QuantizeJobTest.options(out, 1L << 30), new KernelRtn(), device(true), ProgressListener.NONE)
                .verifiedOn(Kernels.byName("vector"))
                .run(QuantizeJobTest.samples(), Map.of()));
        assertTrue(e.getMessage().startsWith("--verify-device: layer 0: "), e.getMessage());
        assertTrue(
                e.getMessage()
                        .contains("differ from the CPU's on the same inputs, more than the 5% that rounding ties"
                                + " can flip (most in "),
                e.getMessage());
        assertTrue(
                e.getMessage().endsWith("the cuda kernels cannot be trusted on this machine: rerun with --device cpu"),
                e.getMessage());
        assertFalse(Files.exists(out), "no release is written");
        assertFalse(Files.exists(QuantizeJob.partialDir(out)), "no finished layer to keep");
    }

    @Test
    void onTheJavaKernelsThereIsNothingToVerify(@TempDir Path tmp) {
        KernelRtn m = new KernelRtn();
        List<String> log = new ArrayList<>();
        new QuantizeJob(QuantizeJobTest.options(tmp.resolve("q"), 1L << 30), m, Kernels.byName("vector"), listener(log))
                .verifiedOn(Kernels.byName("scalar"))
                .run(QuantizeJobTest.samples(), Map.of());
        assertTrue(
                log.contains("verify-device: the run is on the Java kernels already; nothing to verify"),
                log.toString());
        assertEquals(8, m.quantized);
    }

    @Test
    void theThresholdIsTheTieFlipRate() {
        int[] codes = new int[1000];
        Arrays.fill(codes, 8);
        QuantizedLinear cpu = new QuantizedLinear(1, 1000, 1000, codes, new float[] {1f}, new int[1000]);
        int[] fifty = codes.clone();
        Arrays.fill(fifty, 0, 50, 9);
        String ok = DeviceVerify.compare(3, "cuda", Map.of("mlp.up_proj", linear(fifty)), Map.of("mlp.up_proj", cpu));
        assertEquals("verify-device: layer 3: 50 of 1000 codes (5.000%) differ from the CPU's on the same inputs", ok);
        int[] fiftyOne = codes.clone();
        Arrays.fill(fiftyOne, 0, 51, 9);
        CheckFailedException e = assertThrows(
                CheckFailedException.class,
                () -> DeviceVerify.compare(
                        3, "cuda", Map.of("mlp.up_proj", linear(fiftyOne)), Map.of("mlp.up_proj", cpu)));
        assertEquals(
                "--verify-device: layer 3: 51 of 1000 codes (5.100%) differ from the CPU's on the same inputs, more"
                        + " than the 5% that rounding ties can flip (most in mlp.up_proj: 51 of 1000); the cuda kernels"
                        + " cannot be trusted on this machine: rerun with --device cpu",
                e.getMessage());
    }

    private static QuantizedLinear linear(int[] codes) {
        return new QuantizedLinear(1, codes.length, codes.length, codes, new float[] {1f}, new int[codes.length]);
    }

    private static ProgressListener listener(List<String> log) {
        return new ProgressListener() {
            @Override
            public void info(String line) {
                log.add(line);
            }
        };
    }
}
