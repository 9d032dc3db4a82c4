package dev.m2q.gptq;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.kernels.Backend;
import dev.m2q.core.kernels.CountingKernels;
import dev.m2q.core.kernels.ForwardingBackend;
import dev.m2q.core.kernels.ForwardingKernels;
import dev.m2q.core.kernels.JavaBackend;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.pipeline.ActivationStore;
import dev.m2q.core.pipeline.GptqRelease;
import dev.m2q.core.pipeline.LayerContext;
import dev.m2q.core.pipeline.ProgressListener;
import dev.m2q.core.pipeline.QuantizeJob;
import dev.m2q.core.pipeline.QuantizeOptions;
import dev.m2q.core.pipeline.ReportLine;
import dev.m2q.core.pipeline.ReportRow;
import dev.m2q.core.quant.QuantScheme;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * How the layer pass sizes itself to the backend's memory (LayerContext's class javadoc), on a Java backend that
 * reports a finite {@link Backend#freeBytes()} like a device: the batch shrinks to what fits, the inputs stay
 * resident only when they fit beside the weights, GPTQ's working set and one sequence, and otherwise cross once per
 * pass; in every case the release and its report are bit for bit those of the heap run with the same batch. The
 * crossings are counted by {@link CountingKernels} around it.
 */
class LayerPassResidencyTest {
    static final Path FIXTURE = BoundaryBytesTest.FIXTURE;
    static final int SEQ = 64;
    static final int SAMPLES = 4;
    static final int PASSES = 5; // true-sequential GPTQ: four group passes and the outputs pass

    private static final ModelConfig CFG = ModelConfig.load(FIXTURE);
    private static final long FIXED = LayerContext.weightBytes(CFG) + gptq().residentBytes(CFG);
    private static final long PER_SEQUENCE = LayerContext.sequenceBytes(CFG, SEQ);
    private static final long INPUTS = ActivationStore.bytes(SAMPLES, SEQ * CFG.hiddenSize());

    static GptqMethod gptq() {
        return new GptqMethod(GptqOptions.DEFAULTS, true);
    }

    /** Room for the inputs and two sequences, but not three: batches of 2 (4 configured), inputs resident. */
    @Test
    void batchShrinksToTheDevicesMemory(@TempDir Path tmp) {
        Run heap = run(tmp.resolve("heap"), Kernels.byName("vector"), 2, 1L << 30);
        Run device = run(tmp.resolve("device"), device(FIXED + INPUTS + 3 * PER_SEQUENCE - 1), 4, 1L << 30);
        assertEquals(heap.release(), device.release());
        assertEquals(heap.report(), device.report());
        // the vectors and invFreq, then the two batches' inputs once for all five passes
        assertEquals(6 + 2, device.wraps(), device.table());
        assertEquals(6 + 2, heap.wraps(), heap.table());
        assertTrue(
                device.log().stream().anyMatch(l -> l.contains("2 sequences per batch (not 4)")),
                device.log()::toString);
    }

    /** Room for one sequence beside the weights but not for the inputs too: batches of 1, inputs written per pass. */
    @Test
    void inputsThatDoNotFitCrossOncePerPass(@TempDir Path tmp) {
        Run heap = run(tmp.resolve("heap"), Kernels.byName("vector"), 1, 1L << 30);
        Run device = run(tmp.resolve("device"), device(FIXED + INPUTS + PER_SEQUENCE - 1), 4, 1L << 30);
        assertEquals(heap.release(), device.release());
        assertEquals(heap.report(), device.report());
        assertEquals(6 + PASSES * SAMPLES, device.wraps(), device.table());
        assertEquals(6 + SAMPLES, heap.wraps(), heap.table());
        CountingKernels.OpCount resident = heap.counts().stream()
                .filter(c -> c.op().equals("backend.wrap"))
                .findFirst()
                .orElseThrow();
        CountingKernels.OpCount rewritten = device.counts().stream()
                .filter(c -> c.op().equals("backend.wrap"))
                .findFirst()
                .orElseThrow();
        assertEquals(resident.bytesIn() + (PASSES - 1) * INPUTS, rewritten.bytesIn());
    }

    /**
     * On the heap the resident copy shares the inputs' half of --max-memory with the store: with a half that holds
     * the store but not the copy too, the inputs are written per pass, and nothing else changes.
     */
    @Test
    void heapBudgetBoundsTheResidentCopy(@TempDir Path tmp) {
        Run roomy = run(tmp.resolve("roomy"), Kernels.byName("vector"), 2, 1L << 30);
        Run tight = run(tmp.resolve("tight"), Kernels.byName("vector"), 2, 2 * (2 * INPUTS - 1));
        assertEquals(roomy.release(), tight.release());
        assertEquals(roomy.report(), tight.report());
        assertEquals(6 + 2, roomy.wraps(), roomy.table());
        assertEquals(6 + PASSES * 2, tight.wraps(), tight.table());
    }

    /**
     * One run's release tensors (hashes of the safetensors files), report rows without their timings, the
     * crossings of its last layer and its log.
     */
    record Run(
            Map<String, String> release,
            List<ReportLine> report,
            List<CountingKernels.OpCount> counts,
            String table,
            List<String> log) {
        long wraps() {
            return counts.stream()
                    .filter(c -> c.op().equals("backend.wrap"))
                    .mapToLong(CountingKernels.OpCount::calls)
                    .sum();
        }
    }

    static Run run(Path out, Kernels kernels, int batchSequences, long maxMemory) {
        CountingKernels ck = new CountingKernels(kernels);
        List<String> log = new ArrayList<>();
        List<List<CountingKernels.OpCount>> perLayer = new ArrayList<>();
        List<String> tables = new ArrayList<>();
        ProgressListener listener = new ProgressListener() {
            @Override
            public void info(String line) {
                log.add(line);
            }

            @Override
            public void layerDone(int layer, int layers, double seconds) {
                perLayer.add(ck.counts());
                tables.add(ck.table());
                ck.reset(false);
            }
        };
        QuantizeOptions opts = new QuantizeOptions(
                FIXTURE,
                out,
                128,
                SAMPLES,
                SEQ,
                1,
                maxMemory,
                4L << 30,
                batchSequences,
                false,
                false,
                Map.of(),
                List.of("t"),
                "t");
        SplittableRandom r = new SplittableRandom(21);
        List<int[]> samples = new ArrayList<>();
        for (int i = 0; i < SAMPLES; i++) {
            samples.add(r.ints(SEQ, 0, 2045).toArray());
        }
        QuantizeJob.Summary s =
                new QuantizeJob(opts, GptqRelease.GPTQ, QuantScheme.W4A16, gptq(), ck, listener).run(samples, Map.of());
        Map<String, String> release = new TreeMap<>();
        s.files().forEach((f, h) -> {
            if (f.endsWith(".safetensors")) {
                release.put(f, h);
            }
        });
        List<ReportLine> report = new ArrayList<>();
        for (ReportLine line : s.report()) {
            report.add(
                    line instanceof ReportRow row
                            ? new ReportRow(
                                    row.layer(),
                                    row.module(),
                                    row.method(),
                                    row.loss(),
                                    Double.NaN,
                                    row.stats(),
                                    row.ranges())
                            : line);
        }
        assertEquals(CFG.numLayers(), perLayer.size());
        return new Run(release, report, perLayer.getLast(), tables.getLast(), log);
    }

    /**
     * The vector kernels, every kernel forwarded, whose backend is the Java one reporting {@code freeBytes} free, as
     * a device would.
     */
    static Kernels device(long freeBytes) {
        return new ForwardingKernels(Kernels.byName("vector")) {
            @Override
            public String name() {
                return "device-like(" + delegate().name() + ")";
            }

            @Override
            public Backend backend() {
                return new ForwardingBackend(new JavaBackend(delegate())) {
                    @Override
                    public long freeBytes() {
                        return freeBytes;
                    }

                    @Override
                    public String name() {
                        return "limited(" + delegate().name() + ")";
                    }
                };
            }
        };
    }
}
