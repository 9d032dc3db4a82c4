package dev.m2q.gptq.bench;

import dev.m2q.core.grad.FakeQuantizer;
import dev.m2q.core.grad.Tensor;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * AutoRound's per-weight work in one step for one linear (issue 16): {@link FakeQuantizer#forward} (ŵ from W, V,
 * α, β) then {@link FakeQuantizer#backward} (dV, dα, dβ from dŵ), G = 128, on the 32B MLP shape
 * [5120, 27648] by default. {@code impl=fast} is the public entry (the fp32 fast paths), {@code impl=twin} the
 * scalar twins through {@link Tensor}; both give the same bits ({@code FakeQuantizerFastPathTest}). Five fp32
 * [rows, cols] tensors: 2.8 GB at the default shape, hence -Xmx8g. The backward adds into dV, dα, dβ each
 * operation; the values drift but the work per element does not depend on them.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 5)
@Measurement(iterations = 3, time = 10)
@Fork(
        value = 1,
        jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "-Xmx8g"})
@State(Scope.Benchmark)
public class FakeQuantBench {
    @Param({"fast", "twin"})
    public String impl;

    @Param({"5120"})
    public int rows;

    @Param({"27648"})
    public int cols;

    @Param({"128"})
    public int groupSize;

    FakeQuantizer fq;
    Tensor.F32 w;
    Tensor.F32 v;
    Tensor.F32 alpha;
    Tensor.F32 beta;
    Tensor.F32 wq;
    Tensor.F32 dwq;
    Tensor.F32 dv;
    Tensor.F32 dAlpha;
    Tensor.F32 dBeta;

    @Setup
    public void setUp() {
        SplittableRandom rnd = new SplittableRandom(16);
        fq = new FakeQuantizer(groupSize);
        w = Tensor.f32(rows, cols);
        v = Tensor.f32(rows, cols);
        dwq = Tensor.f32(rows, cols);
        for (int i = 0; i < w.size(); i++) {
            w.data()[i] = (float) (rnd.nextGaussian() * 0.02);
            v.data()[i] = (float) (rnd.nextDouble() - 0.5);
            dwq.data()[i] = (float) rnd.nextGaussian();
        }
        alpha = Tensor.f32(rows, cols / groupSize);
        beta = Tensor.f32(rows, cols / groupSize);
        for (int k = 0; k < alpha.size(); k++) {
            alpha.data()[k] = (float) (0.8 + 0.2 * rnd.nextDouble());
            beta.data()[k] = (float) (0.8 + 0.2 * rnd.nextDouble());
        }
        wq = Tensor.f32(rows, cols);
        dv = Tensor.f32(rows, cols);
        dAlpha = Tensor.f32(rows, cols / groupSize);
        dBeta = Tensor.f32(rows, cols / groupSize);
    }

    /** Forward then backward, as SignRound's step runs them for one linear. */
    @Benchmark
    public float forwardBackward() {
        if (impl.equals("fast")) {
            fq.forward(w, v, alpha, beta, wq);
            fq.backward(w, v, alpha, beta, dwq, dv, dAlpha, dBeta);
        } else {
            fq.forwardTwin(w, v, alpha, beta, wq);
            fq.backwardTwin(w, v, alpha, beta, dwq, dv, dAlpha, dBeta);
        }
        return wq.data()[0] + dv.data()[0] + dAlpha.data()[0];
    }
}
