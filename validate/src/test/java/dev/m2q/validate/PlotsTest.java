package dev.m2q.validate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.Color;
import java.awt.GraphicsEnvironment;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Each plot must be a real PNG of the promised size with something drawn in the series' colours, and must leave
 * nothing else in its folder. Pixel-exact comparisons would break on another machine's fonts, so none here.
 */
class PlotsTest {
    private static final byte[] PNG_SIGNATURE = {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

    @TempDir
    Path dir;

    @Test
    void perLayerErrorAloneAndGroupedWithABaseline() throws IOException {
        SplittableRandom rnd = new SplittableRandom(1);
        int layers = 64;
        double[] gptq = new double[layers];
        double[] rtn = new double[layers];
        for (int i = 0; i < layers; i++) {
            gptq[i] = 0.01 + 0.002 * i + 0.005 * rnd.nextDouble();
            rtn[i] = 1.6 * gptq[i];
        }
        Path alone = dir.resolve("layers-alone.png");
        Plots.perLayerError(alone, gptq, null, "GPTQ", null);
        BufferedImage a = readPlot(alone);
        assertTrue(count(a, Plots.CANDIDATE) > 500, "candidate bars drawn");
        assertEquals(0, count(a, Plots.BASELINE), "no baseline colour without a baseline");

        Path grouped = dir.resolve("layers.png");
        Plots.perLayerError(grouped, gptq, rtn, "GPTQ", "RTN");
        BufferedImage g = readPlot(grouped);
        assertTrue(count(g, Plots.CANDIDATE) > 500, "candidate bars drawn");
        assertTrue(count(g, Plots.BASELINE) > count(g, Plots.CANDIDATE), "baseline bars are the taller ones");
        assertOnly(alone, grouped);
    }

    @Test
    void klHistogramWithAndWithoutBaseline() throws IOException {
        SplittableRandom rnd = new SplittableRandom(2);
        double[] gptq = logNormal(rnd, 4000, -7.0);
        double[] rtn = logNormal(rnd, 3000, -5.5);
        gptq[0] = 0; // exact zero and round-off negatives must land in the first bin, not break the log axis
        gptq[1] = -1e-9;
        Path alone = dir.resolve("kl-alone.png");
        Plots.klHistogram(alone, gptq, null, "GPTQ", null);
        assertTrue(count(readPlot(alone), Plots.CANDIDATE) > 500, "candidate bars drawn");

        Path overlay = dir.resolve("kl.png");
        Plots.klHistogram(overlay, gptq, rtn, "GPTQ", "RTN");
        BufferedImage o = readPlot(overlay);
        assertTrue(count(o, Plots.CANDIDATE) > 200, "candidate bars visible beside the overlay");
        assertTrue(countNonBackground(o) > countNonBackground(readPlot(alone)), "overlay adds ink");
        assertOnly(alone, overlay);
    }

    @Test
    void throughputBars() throws IOException {
        LinkedHashMap<String, Double> tps = new LinkedHashMap<>();
        tps.put("BF16", 41.7);
        tps.put("W4 Java", 12.3);
        tps.put("W4 kernel", 118.9);
        Path png = dir.resolve("throughput.png");
        Plots.throughput(png, tps, "Decode throughput, Qwen2-0.5B, batch 1");
        assertTrue(count(readPlot(png), Plots.CANDIDATE) > 2000, "bars drawn");
        assertOnly(png);
    }

    @Test
    void rewritingReplacesThePlot() throws IOException {
        Path png = dir.resolve("t.png");
        Files.writeString(png, "not a png");
        LinkedHashMap<String, Double> tps = new LinkedHashMap<>();
        tps.put("BF16", 1.0);
        Plots.throughput(png, tps, "t");
        readPlot(png);
        assertOnly(png);
    }

    @Test
    void renderingIsHeadless() throws IOException {
        LinkedHashMap<String, Double> tps = new LinkedHashMap<>();
        tps.put("BF16", 1.0);
        Plots.throughput(dir.resolve("t.png"), tps, "t");
        assertEquals("true", System.getProperty("java.awt.headless"), "Plots chose the headless toolkit");
        assertTrue(GraphicsEnvironment.isHeadless());
    }

    @Test
    void badInputIsRefusedAndWritesNothing() throws IOException {
        Path png = dir.resolve("bad.png");
        double[] ok = {0.1, 0.2};
        List<Executable> calls = List.of(
                () -> Plots.perLayerError(png, new double[0], null, "GPTQ", null),
                () -> Plots.perLayerError(png, new double[] {0.1, Double.NaN}, null, "GPTQ", null),
                () -> Plots.perLayerError(png, new double[] {-0.1, 0.2}, null, "GPTQ", null),
                () -> Plots.perLayerError(png, ok, new double[] {0.1}, "GPTQ", "RTN"),
                () -> Plots.perLayerError(png, ok, ok, "GPTQ", null),
                () -> Plots.perLayerError(png, ok, null, " ", null),
                () -> Plots.klHistogram(png, new double[0], null, "GPTQ", null),
                () -> Plots.klHistogram(png, new double[] {1e-3, Double.NaN}, null, "GPTQ", null),
                () -> Plots.klHistogram(png, ok, new double[] {Double.POSITIVE_INFINITY}, "GPTQ", "RTN"),
                () -> Plots.throughput(png, new LinkedHashMap<>(), "t"),
                () -> Plots.throughput(png, new LinkedHashMap<>(Map.of("BF16", Double.NaN)), "t"),
                () -> Plots.throughput(png, new LinkedHashMap<>(Map.of("BF16", -1.0)), "t"));
        for (Executable call : calls) {
            assertThrows(IllegalArgumentException.class, call::run);
        }
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class,
                () -> Plots.klHistogram(png, new double[] {1e-3, 2e-3, Double.NaN}, null, "GPTQ", null));
        assertTrue(e.getMessage().contains("perTokenKl[2]"), e.getMessage());
        assertOnly();
    }

    @Test
    void logBinsCountEveryValueOnceInItsDecadeSlice() {
        SplittableRandom rnd = new SplittableRandom(3);
        double[] values = logNormal(rnd, 5000, -6.0);
        values[0] = 0;
        values[1] = -2e-10;
        values[2] = 3e-12; // below the floor
        double[] edges = LogHistogram.edgesFor(values);
        assertEquals(LogHistogram.FLOOR, edges[0], 1e-18, "tiny values pin the lower edge to the floor");
        double step = Math.pow(10, 1.0 / LogHistogram.BINS_PER_DECADE);
        for (int i = 0; i + 1 < edges.length; i++) {
            assertEquals(step, edges[i + 1] / edges[i], 1e-12, "log-spaced");
        }
        double max = Arrays.stream(values).max().orElseThrow();
        double upper = edges[edges.length - 1];
        assertTrue(upper >= max && upper / 10 < max, "the upper edge is the decade just above the max");

        LogHistogram h = LogHistogram.of(values, edges);
        assertEquals(values.length, h.total());
        long[] expected = new long[h.bins()];
        long below = 0;
        for (double v : values) {
            if (v < edges[0]) {
                expected[0]++;
                below++;
                continue;
            }
            for (int i = 0; i < h.bins(); i++) {
                if (v >= edges[i] && (v < edges[i + 1] || i == h.bins() - 1)) {
                    expected[i]++;
                    break;
                }
            }
        }
        assertArrayEquals(expected, h.counts());
        assertTrue(below >= 3, "zero, the negative and the sub-floor value are counted below the lower edge");
        assertEquals(below, h.belowLower());
    }

    @Test
    void logBinsStartAtTheSmallestDecadeWhenAboveTheFloor() {
        double[] edges = LogHistogram.edgesFor(new double[] {3e-4, 0.02}, new double[] {0.5});
        assertEquals(1e-4, edges[0], 1e-16);
        assertEquals(1.0, edges[edges.length - 1], 1e-12);
        assertEquals(4 * LogHistogram.BINS_PER_DECADE, edges.length - 1);
        double[] zeros = LogHistogram.edgesFor(new double[] {0, 0});
        assertEquals(LogHistogram.FLOOR, zeros[0], 1e-18);
        assertEquals(LogHistogram.BINS_PER_DECADE, zeros.length - 1, "all zero: one decade above the floor");
    }

    @Test
    void nearestRankPercentileAndMean() {
        double[] v = new double[200];
        for (int i = 0; i < v.length; i++) {
            v[i] = v.length - i; // 200 … 1, unsorted on purpose
        }
        assertEquals(198.0, LogHistogram.percentile(v, 99));
        assertEquals(100.0, LogHistogram.percentile(v, 50));
        assertEquals(200.0, LogHistogram.percentile(v, 100));
        assertEquals(1.0, LogHistogram.percentile(v, 0.1));
        assertEquals(100.5, LogHistogram.mean(v), 1e-12);
        assertEquals(200.0, v[0], "input left unsorted");
    }

    @FunctionalInterface
    private interface Executable {
        void run() throws IOException;
    }

    /** Per-token KL is roughly log-normal: exp(N(mu, 1.5)) nats, clipped to at most 2. */
    private static double[] logNormal(SplittableRandom rnd, int n, double mu) {
        double[] v = new double[n];
        for (int i = 0; i < n; i++) {
            double u1 = 1 - rnd.nextDouble();
            double u2 = rnd.nextDouble();
            double z = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
            v[i] = Math.min(2, Math.exp(mu + 1.5 * z));
        }
        return v;
    }

    private static BufferedImage readPlot(Path png) throws IOException {
        byte[] bytes = Files.readAllBytes(png);
        assertArrayEquals(PNG_SIGNATURE, Arrays.copyOf(bytes, PNG_SIGNATURE.length), "PNG signature");
        BufferedImage img = ImageIO.read(png.toFile());
        assertEquals(Plots.WIDTH, img.getWidth());
        assertEquals(Plots.HEIGHT, img.getHeight());
        assertTrue(countNonBackground(img) > img.getWidth() * img.getHeight() / 100, "not blank");
        return img;
    }

    private static int count(BufferedImage img, Color c) {
        int rgb = c.getRGB() & 0xffffff;
        int n = 0;
        for (int y = 0; y < img.getHeight(); y++) {
            for (int x = 0; x < img.getWidth(); x++) {
                if ((img.getRGB(x, y) & 0xffffff) == rgb) {
                    n++;
                }
            }
        }
        return n;
    }

    private static int countNonBackground(BufferedImage img) {
        return img.getWidth() * img.getHeight() - count(img, Color.WHITE);
    }

    /** The folder holds exactly these files: no temporary file is left behind. */
    private void assertOnly(Path... expected) throws IOException {
        try (Stream<Path> files = Files.list(dir)) {
            List<Path> actual = files.sorted().toList();
            List<Path> want = Stream.of(expected).sorted().toList();
            assertEquals(want, actual);
        }
    }
}
