package dev.m2q.core.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.kernels.Backend;
import dev.m2q.core.kernels.ForwardingKernels;
import dev.m2q.core.kernels.JavaBackend;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.Matrix;
import dev.m2q.core.kernels.PackedRows;
import dev.m2q.core.model.DecoderLayer;
import dev.m2q.core.model.LayerObserver;
import dev.m2q.core.quant.QuantizedLinear;
import dev.m2q.core.quant.Rtn;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The layer context's resident API on a backend that tracks every buffer and weight it hands out: a method runs
 * the layer on the resident source weights and keeps its dequantized weights resident for the pipeline's outputs
 * pass ({@link LayerResult#weights}); everything resident is freed by each layer's end, and the release is bit for
 * bit the one the pipeline writes when it uploads the dequantized weights itself.
 */
class LayerContextResidencyTest {
    /** RTN; with {@code resident} its dequantized weights are made resident and handed to the pipeline. */
    static final class ResidentRtn implements LayerMethod {
        final boolean resident;
        final List<Long> tokensSeen = new ArrayList<>();

        ResidentRtn(boolean resident) {
            this.resident = resident;
        }

        @Override
        public String name() {
            return "rtn";
        }

        @Override
        public LayerResult quantize(LayerContext ctx) {
            long[] seen = new long[1];
            ctx.run(ctx.resident(), new LayerObserver() {
                @Override
                public void linearInput(String module, Backend b, Backend.Buf x, int rows, int cols) {
                    seen[0] += rows;
                }

                @Override
                public void keysValues(Backend b, Backend.Buf k, Backend.Buf v, int rows, int kvDim) {}
            });
            tokensSeen.add(seen[0]);
            Map<String, QuantizedLinear> q = new LinkedHashMap<>();
            DecoderLayer.Resident weights = ctx.resident();
            for (String m : ctx.config().arch().linears()) {
                Matrix w = ctx.source().linear(m);
                QuantizedLinear ql = Rtn.quantize(w.toFloatArray(), w.rows(), w.cols(), 128);
                q.put(m, ql);
                if (resident) {
                    Backend.Buf data = ctx.backend().wrap(ql.dequantize());
                    weights = weights.with(m, ctx.keep(ctx.backend().weight(data, w.rows(), w.cols())));
                }
            }
            return new LayerResult(q, List.of(), resident ? weights : null);
        }
    }

    @Test
    void everythingResidentIsFreedAtEachLayersEnd(@TempDir Path tmp) {
        Map<String, String> withResident = run(tmp.resolve("resident"), new ResidentRtn(true));
        Map<String, String> uploaded = run(tmp.resolve("uploaded"), new ResidentRtn(false));
        assertEquals(uploaded, withResident);
    }

    private static Map<String, String> run(Path out, ResidentRtn method) {
        Tracking backend = new Tracking(new JavaBackend(Kernels.byName("vector")));
        Kernels kernels = withBackend(backend);
        List<Integer> liveAtLayerEnd = new ArrayList<>();
        ProgressListener listener = new ProgressListener() {
            @Override
            public void layerDone(int layer, int layers, double seconds) {
                liveAtLayerEnd.add(backend.live.size());
            }
        };
        QuantizeJob.Summary s = new QuantizeJob(QuantizeJobTest.options(out, 1L << 30), method, kernels, listener)
                .run(QuantizeJobTest.samples(), Map.of());
        assertEquals(List.of(0, 0, 0, 0, 0, 0, 0, 0), liveAtLayerEnd);
        assertTrue(backend.made > 0, "the pass ran on the tracked backend");
        // every linear input (7 per token; q/k/v and gate/up share theirs) of every calibration token
        long tokens = 4L * 64;
        assertEquals(Collections.nCopies(8, 7 * tokens), method.tokensSeen);
        Map<String, String> release = new TreeMap<>();
        s.files().forEach((f, h) -> {
            if (f.endsWith(".safetensors")) {
                release.put(f, h);
            }
        });
        return release;
    }

    /** The vector kernels with {@code backend} as their backend. */
    static Kernels withBackend(Backend backend) {
        return new ForwardingKernels(Kernels.byName("vector")) {
            @Override
            public Backend backend() {
                return backend;
            }
        };
    }

    /**
     * A Java backend whose buffers and weights are its own handles, so that it knows which are open ({@link
     * #live}); a handle used after it was closed fails.
     */
    static final class Tracking implements Backend {
        final Backend inner;
        final Set<Object> live = Collections.newSetFromMap(new IdentityHashMap<>());
        int made;

        Tracking(Backend inner) {
            this.inner = inner;
        }

        final class TBuf implements Buf {
            final Buf b;

            TBuf(Buf b) {
                this.b = b;
                live.add(this);
                made++;
            }

            @Override
            public long length() {
                return b.length();
            }

            @Override
            public void close() {
                live.remove(this);
            }
        }

        final class TWeight implements Weight {
            final Weight w;

            TWeight(Weight w) {
                this.w = w;
                live.add(this);
                made++;
            }

            @Override
            public int rows() {
                return w.rows();
            }

            @Override
            public int cols() {
                return w.cols();
            }

            @Override
            public void close() {
                live.remove(this);
            }
        }

        private Buf in(Buf b) {
            if (b == null) {
                return null;
            }
            if (!live.contains(b)) {
                throw new IllegalStateException("buffer used after it was closed");
            }
            return ((TBuf) b).b;
        }

        private Weight in(Weight w) {
            if (!live.contains(w)) {
                throw new IllegalStateException("weight used after it was closed");
            }
            return ((TWeight) w).w;
        }

        @Override
        public String name() {
            return "tracking";
        }

        @Override
        public Buf alloc(long length) {
            return new TBuf(inner.alloc(length));
        }

        @Override
        public Buf wrap(float[] host) {
            return new TBuf(inner.wrap(host));
        }

        @Override
        public void write(float[] src, int off, Buf dst, long dstOff, int len) {
            inner.write(src, off, in(dst), dstOff, len);
        }

        @Override
        public void read(Buf src, long srcOff, float[] dst, int dstOff, int len) {
            inner.read(in(src), srcOff, dst, dstOff, len);
        }

        @Override
        public float[] take(Buf b) {
            float[] a = inner.take(in(b));
            b.close();
            return a;
        }

        @Override
        public void inspect(Buf b, Consumer<float[]> f) {
            inner.inspect(in(b), f);
        }

        @Override
        public void update(Buf b, Consumer<float[]> f) {
            inner.update(in(b), f);
        }

        @Override
        public Weight weight(Matrix m) {
            return new TWeight(inner.weight(m));
        }

        @Override
        public Weight weight(Buf data, int rows, int cols) {
            Buf d = in(data);
            live.remove(data); // the weight owns the buffer now
            return new TWeight(inner.weight(d, rows, cols));
        }

        @Override
        public void copy(Buf src, long srcOff, Buf dst, long dstOff, long n) {
            inner.copy(in(src), srcOff, in(dst), dstOff, n);
        }

        @Override
        public void add(Buf a, Buf b, Buf out, long n) {
            inner.add(in(a), in(b), in(out), n);
        }

        @Override
        public void scale(Buf x, long n, float f) {
            inner.scale(in(x), n, f);
        }

        @Override
        public void matmul(Buf x, int rows, Weight w, Buf bias, Buf y) {
            inner.matmul(in(x), rows, in(w), in(bias), in(y));
        }

        @Override
        public void rmsNorm(Buf x, int rows, int dim, Buf weight, float eps, Buf out) {
            inner.rmsNorm(in(x), rows, dim, in(weight), eps, in(out));
        }

        @Override
        public void rope(Buf x, int rows, int heads, int headDim, Buf invFreq, int startPos, int seqLen) {
            inner.rope(in(x), rows, heads, headDim, in(invFreq), startPos, seqLen);
        }

        @Override
        public void attention(
                Buf q, Buf k, Buf v, int nSeq, int seqLen, int startPos, int heads, int kvHeads, int headDim, Buf out) {
            inner.attention(in(q), in(k), in(v), nSeq, seqLen, startPos, heads, kvHeads, headDim, in(out));
        }

        @Override
        public void ropePacked(Buf x, int heads, int headDim, Buf invFreq, PackedRows layout) {
            inner.ropePacked(in(x), heads, headDim, in(invFreq), layout);
        }

        @Override
        public void attentionPacked(
                Buf q, Buf k, Buf v, PackedRows layout, int heads, int kvHeads, int headDim, Buf out) {
            inner.attentionPacked(in(q), in(k), in(v), layout, heads, kvHeads, headDim, in(out));
        }

        @Override
        public void swiglu(Buf gate, Buf up, long n) {
            inner.swiglu(in(gate), in(up), n);
        }

        @Override
        public void syrkUpper(Buf x, int rows, int k, Buf c) {
            inner.syrkUpper(in(x), rows, k, in(c));
        }

        @Override
        public void absMaxColumns(Buf x, int rows, int cols, Buf out) {
            inner.absMaxColumns(in(x), rows, cols, in(out));
        }
    }
}
