package dev.m2q.validate;

import dev.m2q.core.io.AtomicFile;
import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Path;
import java.text.DecimalFormat;
import java.text.DecimalFormatSymbols;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import javax.imageio.ImageIO;
import org.jfree.chart.ChartUtils;
import org.jfree.chart.JFreeChart;
import org.jfree.chart.axis.Axis;
import org.jfree.chart.axis.AxisLocation;
import org.jfree.chart.axis.CategoryAxis;
import org.jfree.chart.axis.LogAxis;
import org.jfree.chart.axis.NumberAxis;
import org.jfree.chart.axis.NumberTickUnit;
import org.jfree.chart.axis.SymbolAxis;
import org.jfree.chart.block.BlockBorder;
import org.jfree.chart.labels.ItemLabelAnchor;
import org.jfree.chart.labels.ItemLabelPosition;
import org.jfree.chart.labels.StandardCategoryItemLabelGenerator;
import org.jfree.chart.plot.CategoryPlot;
import org.jfree.chart.plot.Plot;
import org.jfree.chart.plot.PlotOrientation;
import org.jfree.chart.plot.SeriesRenderingOrder;
import org.jfree.chart.plot.ValueMarker;
import org.jfree.chart.plot.XYPlot;
import org.jfree.chart.renderer.category.BarRenderer;
import org.jfree.chart.renderer.category.StandardBarPainter;
import org.jfree.chart.renderer.xy.StandardXYBarPainter;
import org.jfree.chart.renderer.xy.XYBarRenderer;
import org.jfree.chart.renderer.xy.XYErrorRenderer;
import org.jfree.chart.title.TextTitle;
import org.jfree.chart.ui.RectangleAnchor;
import org.jfree.chart.ui.RectangleInsets;
import org.jfree.chart.ui.TextAnchor;
import org.jfree.data.category.DefaultCategoryDataset;
import org.jfree.data.xy.XYIntervalSeries;
import org.jfree.data.xy.XYIntervalSeriesCollection;
import org.jfree.data.xy.YIntervalSeries;
import org.jfree.data.xy.YIntervalSeriesCollection;

/**
 * The PNG plots of {@code validation.md}, drawn with JFreeChart.
 *
 * <p>Every plot is {@link #WIDTH}×{@link #HEIGHT} pixels and is written atomically: rendered into a hidden temporary
 * file beside the target, then renamed over it, so a reader never sees half a PNG and a failed render leaves no file.
 *
 * <p>Input policy: NaN and infinite values are refused with an {@link IllegalArgumentException} that names the
 * argument and the index, as are empty inputs and missing labels. A NaN in a layer error or a token's KL means the
 * measurement is broken; a plot that quietly skipped it would hide that.
 *
 * <p>Rendering needs no display: this class asks AWT for its headless toolkit ({@code java.awt.headless=true}) before
 * any AWT class is initialised, unless the property was set explicitly. Text uses the logical font {@code SansSerif},
 * which the JDK resolves through fontconfig (DejaVu Sans on a typical Linux).
 */
public final class Plots {
    static {
        if (System.getProperty("java.awt.headless") == null) {
            System.setProperty("java.awt.headless", "true");
        }
        ImageIO.setUseCache(false);
    }

    public static final int WIDTH = 960;
    public static final int HEIGHT = 540;

    static final Color CANDIDATE = new Color(0x2b6cb0);
    static final Color BASELINE = new Color(0xdd7a2c);
    /** Baseline bars over the candidate's histogram: see-through so both stay visible. */
    /** The third model of a task-accuracy plot (the reference model there, the other two being candidate and RTN). */
    static final Color REFERENCE = new Color(0x444444);

    static final Color BASELINE_OVERLAY = new Color(0xdd, 0x7a, 0x2c, 0x80);

    private static final Color BACKGROUND = Color.WHITE;
    private static final Color GRID = new Color(0xdddddd);
    private static final Color LABEL_BACKGROUND = new Color(255, 255, 255, 200);
    private static final Font TITLE_FONT = new Font(Font.SANS_SERIF, Font.BOLD, 18);
    private static final Font SUBTITLE_FONT = new Font(Font.SANS_SERIF, Font.PLAIN, 13);
    private static final Font AXIS_LABEL_FONT = new Font(Font.SANS_SERIF, Font.PLAIN, 14);
    private static final Font TICK_FONT = new Font(Font.SANS_SERIF, Font.PLAIN, 12);
    private static final Font MARKER_FONT = new Font(Font.SANS_SERIF, Font.PLAIN, 12);

    private Plots() {}

    /**
     * Bars of the per-layer relative output error {@code ‖h_cand − h_ref‖ / ‖h_ref‖}, layer 0 … L−1, grouped with a
     * baseline's bars (for example RTN) when one is given.
     *
     * @param candidate {@code [L]}, finite and ≥ 0
     * @param baseline {@code [L]}, finite and ≥ 0, or null for none
     * @param baselineLabel required when {@code baseline} is given, otherwise ignored
     */
    public static void perLayerError(
            Path png, double[] candidate, double[] baseline, String candidateLabel, String baselineLabel)
            throws IOException {
        requireNonNegative("candidate", candidate);
        requireLabel("candidateLabel", candidateLabel);
        if (baseline != null) {
            requireNonNegative("baseline", baseline);
            requireLabel("baselineLabel", baselineLabel);
            if (baseline.length != candidate.length) {
                throw new IllegalArgumentException("baseline has " + baseline.length + " layers, candidate has "
                        + candidate.length + "; both must cover the same layers");
            }
        }
        int layers = candidate.length;
        // Each layer owns [i − 0.4, i + 0.4]; with a baseline the candidate takes the left half, the baseline the
        // right.
        double half = 0.4;
        XYIntervalSeriesCollection data = new XYIntervalSeriesCollection();
        data.addSeries(layerBars(candidateLabel, candidate, -half, baseline == null ? half : 0));
        if (baseline != null) {
            data.addSeries(layerBars(baselineLabel, baseline, 0, half));
        }

        NumberAxis x = new NumberAxis("decoder layer");
        x.setStandardTickUnits(NumberAxis.createIntegerTickUnits());
        x.setRange(-0.5, layers - 0.5);
        NumberAxis y = new NumberAxis("‖h − h_ref‖ / ‖h_ref‖");
        y.setAutoRangeIncludesZero(true);
        y.setUpperMargin(0.08);

        XYBarRenderer bars = flatBars();
        bars.setSeriesPaint(0, CANDIDATE);
        bars.setSeriesPaint(1, BASELINE);
        XYPlot plot = new XYPlot(data, x, y, bars);
        plot.setDomainGridlinesVisible(false);

        JFreeChart chart = chart("Per-layer relative output error", plot, baseline != null);
        chart.addSubtitle(subtitle(layers + " layers, hidden state after each layer vs the reference model"));
        write(png, chart);
    }

    /**
     * Histogram of per-token {@code KL(P_ref ‖ P_cand)} in nats on log-spaced bins and a log x axis (see
     * {@link LogHistogram} for the bins; values below the lower edge, zero included, fall in the first bin).
     * The y axis is the fraction of tokens, so a baseline over a different number of tokens still compares. Vertical
     * markers show the mean and the 99th percentile (nearest rank); the baseline, when given, is drawn over the
     * candidate semi-transparent, with dashed markers.
     *
     * @param perTokenKl {@code [tokens]}, finite (small negatives from round-off are allowed)
     * @param baseline {@code [tokens']}, finite, or null for none
     * @param baselineLabel required when {@code baseline} is given, otherwise ignored
     */
    public static void klHistogram(
            Path png, double[] perTokenKl, double[] baseline, String candidateLabel, String baselineLabel)
            throws IOException {
        requireFinite("perTokenKl", perTokenKl);
        requireLabel("candidateLabel", candidateLabel);
        if (baseline != null) {
            requireFinite("baseline", baseline);
            requireLabel("baselineLabel", baselineLabel);
        }
        double[] edges =
                baseline == null ? LogHistogram.edgesFor(perTokenKl) : LogHistogram.edgesFor(perTokenKl, baseline);
        XYIntervalSeriesCollection data = new XYIntervalSeriesCollection();
        data.addSeries(histogramBars(candidateLabel, LogHistogram.of(perTokenKl, edges)));
        if (baseline != null) {
            data.addSeries(histogramBars(baselineLabel, LogHistogram.of(baseline, edges)));
        }

        LogAxis x = new LogAxis("KL(P_ref ‖ P_cand) per token, nats (log scale; values < 1e"
                + Math.round(Math.log10(edges[0])) + ", zero included, counted in the first bin)");
        x.setBase(10);
        x.setSmallestValue(edges[0]);
        x.setRange(edges[0], edges[edges.length - 1]);
        x.setTickUnit(new NumberTickUnit(1));
        NumberAxis y = new NumberAxis("fraction of tokens");
        y.setUpperMargin(0.25);

        XYBarRenderer bars = flatBars();
        bars.setSeriesPaint(0, CANDIDATE);
        bars.setSeriesPaint(1, BASELINE_OVERLAY);
        XYPlot plot = new XYPlot(data, x, y, bars);
        plot.setSeriesRenderingOrder(SeriesRenderingOrder.FORWARD);
        plot.setDomainGridlinesVisible(false);

        int row = addMarkers(plot, perTokenKl, candidateLabel, CANDIDATE, edges, 0, false);
        if (baseline != null) {
            addMarkers(plot, baseline, baselineLabel, BASELINE, edges, row, true);
        }

        JFreeChart chart = chart("Per-token KL divergence from the reference", plot, baseline != null);
        String tokens = baseline == null
                ? perTokenKl.length + " tokens"
                : perTokenKl.length + " tokens (" + candidateLabel + "), " + baseline.length + " (" + baselineLabel
                        + ")";
        chart.addSubtitle(subtitle(tokens + "; " + LogHistogram.BINS_PER_DECADE + " bins per decade"));
        write(png, chart);
    }

    /**
     * Horizontal bars of decode throughput, one per configuration in the map's order, each labelled with its value.
     *
     * @param tokensPerSecond configuration name (for example "BF16", "W4 kernel") → tokens/s, finite and ≥ 0
     */
    public static void throughput(Path png, LinkedHashMap<String, Double> tokensPerSecond, String title)
            throws IOException {
        requireLabel("title", title);
        if (tokensPerSecond == null || tokensPerSecond.isEmpty()) {
            throw new IllegalArgumentException("tokensPerSecond is empty: nothing to plot");
        }
        DefaultCategoryDataset data = new DefaultCategoryDataset();
        for (Map.Entry<String, Double> e : tokensPerSecond.entrySet()) {
            requireLabel("configuration name", e.getKey());
            Double v = e.getValue();
            if (v == null || !Double.isFinite(v) || v < 0) {
                throw new IllegalArgumentException(
                        "tokensPerSecond[" + e.getKey() + "] = " + v + ": must be finite and ≥ 0");
            }
            data.addValue(v, "tokens/s", e.getKey());
        }

        BarRenderer bars = new BarRenderer();
        bars.setBarPainter(new StandardBarPainter());
        bars.setShadowVisible(false);
        bars.setDrawBarOutline(false);
        bars.setSeriesPaint(0, CANDIDATE);
        bars.setMaximumBarWidth(0.15);
        bars.setDefaultItemLabelGenerator(new StandardCategoryItemLabelGenerator(
                "{2}", new DecimalFormat("#,##0.0", DecimalFormatSymbols.getInstance(Locale.ROOT))));
        bars.setDefaultItemLabelsVisible(true);
        bars.setDefaultItemLabelFont(MARKER_FONT);
        bars.setDefaultPositiveItemLabelPosition(
                new ItemLabelPosition(ItemLabelAnchor.OUTSIDE3, TextAnchor.CENTER_LEFT));
        bars.setItemLabelAnchorOffset(4);

        CategoryAxis names = new CategoryAxis(null);
        NumberAxis values = new NumberAxis("tokens/s");
        values.setUpperMargin(0.15);
        CategoryPlot plot = new CategoryPlot(data, names, values, bars);
        plot.setOrientation(PlotOrientation.HORIZONTAL);
        plot.setRangeAxisLocation(AxisLocation.BOTTOM_OR_LEFT);
        plot.setDomainGridlinesVisible(false);

        write(png, chart(title, plot, false));
    }

    /**
     * Per-task accuracy of each model, in percent, as a point with its 95% interval as an error bar; the models of a
     * task sit side by side around its tick. Series colours: the first model {@link #REFERENCE}, the second
     * {@link #CANDIDATE}, the third {@link #BASELINE}.
     *
     * @param tasks the tasks' axis labels, in order
     * @param models the models' names (1 to 3), in order
     * @param accuracy {@code [model][task]} percent, finite and in [0, 100]
     * @param low {@code [model][task]} the interval's lower end, finite, ≤ accuracy
     * @param high {@code [model][task]} the interval's upper end, finite, ≥ accuracy, ≤ 100
     */
    public static void taskAccuracy(
            Path png,
            String title,
            String subtitle,
            List<String> tasks,
            List<String> models,
            double[][] accuracy,
            double[][] low,
            double[][] high)
            throws IOException {
        requireLabel("title", title);
        if (tasks == null || tasks.isEmpty()) {
            throw new IllegalArgumentException("tasks is empty: nothing to plot");
        }
        if (models == null || models.isEmpty() || models.size() > 3) {
            throw new IllegalArgumentException(
                    "models: 1 to 3 are plotted, got " + (models == null ? 0 : models.size()));
        }
        tasks.forEach(t -> requireLabel("task name", t));
        models.forEach(m -> requireLabel("model name", m));
        if (accuracy.length != models.size() || low.length != models.size() || high.length != models.size()) {
            throw new IllegalArgumentException("accuracy, low and high need one row per model (" + models.size() + ")");
        }
        YIntervalSeriesCollection data = new YIntervalSeriesCollection();
        double width = 0.6; // the models of one task share [i − 0.3, i + 0.3]
        for (int m = 0; m < models.size(); m++) {
            String name = models.get(m);
            requireFinite(name + " accuracy", accuracy[m]);
            requireFinite(name + " low", low[m]);
            requireFinite(name + " high", high[m]);
            if (accuracy[m].length != tasks.size() || low[m].length != tasks.size() || high[m].length != tasks.size()) {
                throw new IllegalArgumentException(name + ": one value per task (" + tasks.size() + ") is needed");
            }
            YIntervalSeries s = new YIntervalSeries(name);
            double offset = models.size() == 1 ? 0 : -width / 2 + width * m / (models.size() - 1);
            for (int t = 0; t < tasks.size(); t++) {
                double a = accuracy[m][t];
                if (!(0 <= low[m][t] && low[m][t] <= a && a <= high[m][t] && high[m][t] <= 100)) {
                    throw new IllegalArgumentException(name + " on " + tasks.get(t) + ": need 0 ≤ low ≤ accuracy ≤ high"
                            + " ≤ 100, got " + low[m][t] + " ≤ " + a + " ≤ " + high[m][t]);
                }
                s.add(t + offset, a, low[m][t], high[m][t]);
            }
            data.addSeries(s);
        }
        SymbolAxis x = new SymbolAxis(null, tasks.toArray(String[]::new));
        x.setRange(-0.6, tasks.size() - 0.4);
        x.setGridBandsVisible(false);
        x.setVerticalTickLabels(tasks.size() > 6); // many tasks (MMLU's subsets): labels side by side would overlap
        NumberAxis y = new NumberAxis("accuracy, % (95% interval)");
        y.setRange(0, 100);

        XYErrorRenderer points = new XYErrorRenderer();
        points.setDefaultLinesVisible(false);
        points.setDefaultShapesVisible(true);
        points.setDrawXError(false);
        points.setDrawYError(true);
        points.setErrorStroke(new BasicStroke(2f));
        points.setCapLength(8);
        Color[] colours = {REFERENCE, CANDIDATE, BASELINE};
        for (int m = 0; m < models.size(); m++) {
            points.setSeriesPaint(m, colours[m]);
        }
        XYPlot plot = new XYPlot(data, x, y, points);
        plot.setDomainGridlinesVisible(false);

        JFreeChart chart = chart(title, plot, true);
        if (subtitle != null && !subtitle.isBlank()) {
            chart.addSubtitle(subtitle(subtitle));
        }
        write(png, chart);
    }

    private static XYIntervalSeries layerBars(String label, double[] values, double left, double right) {
        XYIntervalSeries s = new XYIntervalSeries(label);
        for (int i = 0; i < values.length; i++) {
            s.add(i, i + left, i + right, values[i], values[i], values[i]);
        }
        return s;
    }

    private static XYIntervalSeries histogramBars(String label, LogHistogram h) {
        XYIntervalSeries s = new XYIntervalSeries(label);
        double total = h.total();
        double[] edges = h.edges();
        for (int i = 0; i < h.bins(); i++) {
            double share = h.counts()[i] / total;
            s.add(Math.sqrt(edges[i] * edges[i + 1]), edges[i], edges[i + 1], share, share, share);
        }
        return s;
    }

    /** Mean and p99 markers, each label on its own row under the top so that none overlaps; returns the next row. */
    private static int addMarkers(
            XYPlot plot, double[] values, String label, Color color, double[] edges, int row, boolean dashed) {
        BasicStroke stroke = dashed
                ? new BasicStroke(1.5f, BasicStroke.CAP_BUTT, BasicStroke.JOIN_MITER, 10f, new float[] {6f, 4f}, 0f)
                : new BasicStroke(1.5f);
        addMarker(plot, LogHistogram.mean(values), label + " mean", color, stroke, edges, row);
        addMarker(plot, LogHistogram.percentile(values, 99), label + " p99", color, stroke, edges, row + 1);
        return row + 2;
    }

    private static void addMarker(
            XYPlot plot, double value, String label, Color color, BasicStroke stroke, double[] edges, int row) {
        // A marker outside the axis is not drawn: pin it to the nearest edge; the label keeps the true value.
        ValueMarker marker = new ValueMarker(Math.clamp(value, edges[0], edges[edges.length - 1]), color, stroke);
        marker.setLabel(label + " " + sci(value));
        marker.setLabelFont(MARKER_FONT);
        marker.setLabelPaint(color.darker());
        marker.setLabelAnchor(RectangleAnchor.TOP_RIGHT);
        marker.setLabelTextAnchor(TextAnchor.TOP_LEFT);
        marker.setLabelBackgroundColor(LABEL_BACKGROUND);
        marker.setLabelOffset(new RectangleInsets(4 + 16 * row, 4, 0, 0));
        plot.addDomainMarker(marker);
    }

    private static XYBarRenderer flatBars() {
        XYBarRenderer bars = new XYBarRenderer();
        bars.setBarPainter(new StandardXYBarPainter());
        bars.setShadowVisible(false);
        bars.setDrawBarOutline(false);
        return bars;
    }

    private static JFreeChart chart(String title, Plot plot, boolean legend) {
        plot.setBackgroundPaint(BACKGROUND);
        plot.setOutlineVisible(false);
        if (plot instanceof XYPlot xy) {
            xy.setRangeGridlinePaint(GRID);
            xy.setRangeGridlineStroke(new BasicStroke(1f));
            fonts(xy.getDomainAxis());
            fonts(xy.getRangeAxis());
        } else if (plot instanceof CategoryPlot cat) {
            cat.setRangeGridlinePaint(GRID);
            cat.setRangeGridlineStroke(new BasicStroke(1f));
            fonts(cat.getDomainAxis());
            fonts(cat.getRangeAxis());
        }
        JFreeChart chart = new JFreeChart(title, TITLE_FONT, plot, legend);
        chart.setBackgroundPaint(BACKGROUND);
        chart.setPadding(new RectangleInsets(8, 8, 8, 16));
        if (legend) {
            chart.getLegend().setFrame(BlockBorder.NONE);
        }
        return chart;
    }

    private static void fonts(Axis axis) {
        axis.setLabelFont(AXIS_LABEL_FONT);
        axis.setTickLabelFont(TICK_FONT);
    }

    private static TextTitle subtitle(String text) {
        TextTitle t = new TextTitle(text, SUBTITLE_FONT);
        t.setPaint(Color.DARK_GRAY);
        return t;
    }

    /**
     * Renders into memory, then replaces {@code png} atomically. Encoding in memory (ImageIO without its file cache)
     * keeps a failing disk away from ImageIO: a write error is one plain exception here, not a half-closed ImageIO
     * cache stream that prints a stack trace when the JVM exits.
     */
    private static void write(Path png, JFreeChart chart) throws IOException {
        ByteArrayOutputStream encoded = new ByteArrayOutputStream();
        ChartUtils.writeChartAsPNG(encoded, chart, WIDTH, HEIGHT);
        AtomicFile.writeBytes(png, encoded.toByteArray());
    }

    private static void requireFinite(String name, double[] values) {
        if (values == null || values.length == 0) {
            throw new IllegalArgumentException(name + " is empty: nothing to plot");
        }
        for (int i = 0; i < values.length; i++) {
            if (!Double.isFinite(values[i])) {
                throw new IllegalArgumentException(
                        name + "[" + i + "] = " + values[i] + ": plots take finite values only (NaN is refused)");
            }
        }
    }

    private static void requireNonNegative(String name, double[] values) {
        requireFinite(name, values);
        for (int i = 0; i < values.length; i++) {
            if (values[i] < 0) {
                throw new IllegalArgumentException(name + "[" + i + "] = " + values[i] + ": a relative error is ≥ 0");
            }
        }
    }

    private static void requireLabel(String name, String label) {
        if (label == null || label.isBlank()) {
            throw new IllegalArgumentException(name + " is missing");
        }
    }

    private static String sci(double v) {
        return String.format(Locale.ROOT, "%.2g", v);
    }
}
