package dev.nshap.plot;

import com.fasterxml.jackson.databind.JsonNode;
import dev.nshap.NshapException;
import dev.nshap.io.AtomicFiles;
import org.jfree.chart.ChartUtils;
import org.jfree.chart.JFreeChart;
import org.jfree.chart.annotations.XYTextAnnotation;
import org.jfree.chart.axis.CategoryAxis;
import org.jfree.chart.axis.NumberAxis;
import org.jfree.chart.axis.SymbolAxis;
import org.jfree.chart.plot.CategoryPlot;
import org.jfree.chart.plot.XYPlot;
import org.jfree.chart.renderer.PaintScale;
import org.jfree.chart.renderer.category.BoxAndWhiskerRenderer;
import org.jfree.chart.renderer.xy.DeviationRenderer;
import org.jfree.chart.renderer.xy.XYBlockRenderer;
import org.jfree.chart.title.PaintScaleLegend;
import org.jfree.chart.title.TextTitle;
import org.jfree.chart.ui.RectangleEdge;
import org.jfree.data.statistics.DefaultBoxAndWhiskerCategoryDataset;
import org.jfree.data.xy.DefaultXYZDataset;
import org.jfree.data.xy.YIntervalSeries;
import org.jfree.data.xy.YIntervalSeriesCollection;
import org.jfree.svg.SVGGraphics2D;

import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.Paint;
import java.awt.Rectangle;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** JFreeChart figures of nshap results, written as PNG and SVG side by side. */
public final class Charts {
    static { System.setProperty("java.awt.headless", "true"); }

    public static final int WIDTH = 900, HEIGHT = 560;
    private static final Color[] PALETTE = {new Color(0x1f77b4), new Color(0xd62728), new Color(0x2ca02c), new Color(0x9467bd),
            new Color(0xff7f0e), new Color(0x8c564b), new Color(0xe377c2), new Color(0x17becf)};
    private static final Pattern NEURON = Pattern.compile("blocks\\.(\\d+)\\.mlp\\.hook_(?:post|pre)\\[(\\d+)(?::\\d+)?]");

    private Charts() {}

    /** Picks the chart(s) for a result's format; writes PREFIX[-part].png and .svg; returns the paths written. */
    public static List<Path> plot(JsonNode result, Path prefix, int width, int height) {
        if (width < 100 || height < 100 || width > 10000 || height > 10000)
            throw new NshapException("plot size " + width + "x" + height + ": width and height must be 100..10000");
        String format = result.path("format").asText("");
        List<Path> out = new ArrayList<>();
        if (format.equals("nshap-impairment-1")) {
            Set<String> metrics = new LinkedHashSet<>();
            for (JsonNode c : result.path("curves")) metrics.add(c.path("metric").asText());
            if (metrics.isEmpty()) throw new NshapException("impairment result has no curves to plot");
            for (String m : metrics) {
                out.addAll(write(impairment(result, m, false), prefix.resolveSibling(prefix.getFileName() + "-" + m), width, height));
                out.addAll(write(impairment(result, m, true), prefix.resolveSibling(prefix.getFileName() + "-" + m + "-harm"), width, height));
            }
        } else if (format.equals("nshap-specificity-1")) {
            out.addAll(write(specificity(result), prefix, width, height));
        } else if (shapleyRows(result) != null) {
            // the players the result ranks first, with their intervals; then how each layer's values spread
            // (a game whose players are not neurons, a synthetic one, has no layers: its top players only)
            JFreeChart top = shapleyTop(result, TOP_PLAYERS);
            JFreeChart layers = hasLayers(result) ? shapleyByLayer(result) : null;
            out.addAll(write(top, prefix, width, height));
            if (layers != null) out.addAll(write(layers, prefix.resolveSibling(prefix.getFileName() + "-layers"), width, height));
        } else {
            throw new NshapException("cannot plot a result of format '" + format + "' (impairment, specificity or shapley results)");
        }
        return out;
    }

    /**
     * The metric against the impairment level per dataset, with its 95% CI band and the random clusters' band. With
     * {@code harm}, the change from the clean model instead, signed so that up = worse, with the paired CI (the
     * same prompts clean and impaired), which is far tighter than the CI of the raw metric.
     */
    public static JFreeChart impairment(JsonNode result, String metric, boolean harm) {
        // Only the random baseline is drawn as a band: the prompt-level intervals of every curve overlapped into
        // one wash. A curve's own interval is two thin lines of its colour, left out of the legend.
        YIntervalSeriesCollection ds = new YIntervalSeriesCollection();
        List<String> kind = new ArrayList<>();          // "curve", "ci", "baseline"
        List<Integer> colour = new ArrayList<>();
        List<Boolean> inLegend = new ArrayList<>();
        int k = 0;
        for (JsonNode c : result.path("curves")) {
            if (!c.path("metric").asText().equals(metric)) continue;
            String name = c.path("dataset").asText();
            int rc = c.path("baseline_clusters").asInt();
            YIntervalSeries s = new YIntervalSeries(name + (rc > 0 ? ": the cluster" : ""));
            YIntervalSeries lo = new YIntervalSeries(name + " CI low"), hi = new YIntervalSeries(name + " CI high");
            YIntervalSeries b = new YIntervalSeries(name + ": " + rc + " random clusters (grey band: mean +- 1.96 sd)");
            double clean = c.path("clean").path("mean").asDouble(Double.NaN);
            boolean higher = c.path("higher_is_better").asBoolean(metric.equals("accuracy") || metric.equals("logit-diff"));
            for (JsonNode p : c.path("points")) {
                double x = p.path("level").asDouble();
                double m, l, h;
                if (harm) {
                    m = p.path("harm").asDouble(Double.NaN);
                    l = p.path("harm_ci_low").asDouble(m);
                    h = p.path("harm_ci_high").asDouble(m);
                } else {
                    m = p.path("mean").asDouble(Double.NaN);
                    l = p.path("ci_low").asDouble(m);
                    h = p.path("ci_high").asDouble(m);
                }
                s.add(x, m, m, m);
                lo.add(x, l, l, l);
                hi.add(x, h, h, h);
                if (p.hasNonNull("baseline_mean")) {
                    double bm = p.get("baseline_mean").asDouble(), blo = p.path("baseline_low").asDouble(bm), bhi = p.path("baseline_high").asDouble(bm);
                    if (harm) {
                        // the random clusters' harm: their mean metric against the same clean mean
                        double hm = higher ? clean - bm : bm - clean, hlo = higher ? clean - bhi : blo - clean, hhi = higher ? clean - blo : bhi - clean;
                        b.add(x, hm, hlo, hhi);
                    } else b.add(x, bm, blo, bhi);
                }
            }
            for (YIntervalSeries t : new YIntervalSeries[]{s, lo, hi}) {
                ds.addSeries(t);
                kind.add(t == s ? "curve" : "ci");
                colour.add(k);
                inLegend.add(t == s);
            }
            if (b.getItemCount() > 0) {
                ds.addSeries(b);
                kind.add("baseline");
                colour.add(k);
                inLegend.add(true);
            }
            k++;
        }
        JsonNode cfg = result.path("config");
        NumberAxis x = new NumberAxis(switch (cfg.path("mode").asText()) {
            case "scale" -> "scale factor (1 = unchanged, 0 = ablated)";
            case "negative-noise" -> "negative-noise intensity";
            default -> "noise intensity (sd)";
        });
        x.setAutoRangeIncludesZero(false);
        NumberAxis y = new NumberAxis(!harm ? metric : metric.equals("accuracy") || metric.equals("logit-diff")
                ? "harm: clean " + metric + " - impaired" : "harm: impaired " + metric + " - clean");
        y.setAutoRangeIncludesZero(false);
        // a flat curve (a random-init model's accuracy is 0 everywhere) would otherwise get a +-5e-9 axis
        if (metric.equals("accuracy") && !harm) y.setRange(-0.02, 1.02);
        else y.setAutoRangeMinimumSize(metric.equals("accuracy") ? 0.1 : 1e-3);
        DeviationRenderer r = new DeviationRenderer(true, false);
        r.setAlpha(0.22f);
        for (int i = 0; i < ds.getSeriesCount(); i++) {
            Color col = PALETTE[colour.get(i) % PALETTE.length];
            r.setSeriesPaint(i, col);
            r.setSeriesFillPaint(i, Color.GRAY);
            r.setSeriesVisibleInLegend(i, inLegend.get(i));
            r.setSeriesStroke(i, switch (kind.get(i)) {
                case "baseline" -> new BasicStroke(1.6f, BasicStroke.CAP_BUTT, BasicStroke.JOIN_MITER, 10f, new float[]{6f, 4f}, 0f);
                case "ci" -> new BasicStroke(0.8f, BasicStroke.CAP_BUTT, BasicStroke.JOIN_MITER, 10f, new float[]{2f, 3f}, 0f);
                default -> new BasicStroke(2.2f);
            });
        }
        XYPlot plot = new XYPlot(ds, x, y, r);
        plot.setBackgroundPaint(Color.WHITE);
        plot.setDomainGridlinePaint(Color.LIGHT_GRAY);
        plot.setRangeGridlinePaint(Color.LIGHT_GRAY);
        JFreeChart chart = new JFreeChart("Impairment of " + shortName(cfg.path("cluster").asText()) + " at " + cfg.path("site").asText()
                + " (" + cfg.path("mode").asText() + ")", new Font("SansSerif", Font.BOLD, 15), plot, true);
        chart.addSubtitle(new TextTitle((harm ? "change from clean (up = worse); dotted: paired 95% CI" : "mean; dotted: 95% CI")
                + " over prompts" + (cfg.path("mode").asText().equals("scale") ? "" : " x " + cfg.path("seeds").asInt() + " noise seed(s)")
                + "; dashed with grey band: random clusters, mean +- 1.96 sd"
                + (cfg.path("model").path("random_init").asBoolean() ? "  [RANDOM-INIT model]" : ""), new Font("SansSerif", Font.PLAIN, 11)));
        chart.setBackgroundPaint(Color.WHITE);
        return chart;
    }

    /** Cluster x dataset heat map of the effect, each cell labelled with its effect and z-score; own topics starred. */
    public static JFreeChart specificity(JsonNode result) {
        List<String> cl = new ArrayList<>(), label = new ArrayList<>(), dn = new ArrayList<>();
        for (JsonNode c : result.path("clusters")) {
            cl.add(c.path("name").asText());
            label.add(c.path("name").asText() + (c.path("specific").asBoolean() ? " (specific)" : ""));
        }
        for (JsonNode d : result.path("datasets")) dn.add(d.path("name").asText());
        if (cl.isEmpty() || dn.isEmpty()) throw new NshapException("specificity result has no clusters or datasets");
        int n = cl.size() * dn.size();
        double[][] xyz = new double[3][n];
        double max = 1e-12;
        List<XYTextAnnotation> labels = new ArrayList<>();
        for (JsonNode c : result.path("cells")) {
            int i = cl.indexOf(c.path("cluster").asText()), j = dn.indexOf(c.path("dataset").asText());
            if (i < 0 || j < 0) continue;
            int q = i * dn.size() + j;
            double e = c.path("effect").asDouble(Double.NaN);
            xyz[0][q] = j;
            xyz[1][q] = i;
            xyz[2][q] = e;
            if (Double.isFinite(e)) max = Math.max(max, Math.abs(e));
            String z = c.hasNonNull("z") ? String.format(Locale.ROOT, "z %.1f", c.get("z").asDouble()) : "z -";
            XYTextAnnotation a = new XYTextAnnotation((c.path("own").asBoolean() ? "* " : "")
                    + String.format(Locale.ROOT, "%.3g  %s", e, z), j, i);
            a.setFont(new Font("SansSerif", c.path("own").asBoolean() ? Font.BOLD : Font.PLAIN, 13));
            labels.add(a);
        }
        DefaultXYZDataset ds = new DefaultXYZDataset();
        ds.addSeries("effect", xyz);
        SymbolAxis x = new SymbolAxis("evaluation dataset", dn.toArray(new String[0]));
        SymbolAxis y = new SymbolAxis("cluster", label.toArray(new String[0]));
        x.setGridBandsVisible(false);
        y.setGridBandsVisible(false);
        y.setInverted(true); // first cluster on top, like the rows of the matrix
        XYBlockRenderer r = new XYBlockRenderer();
        Diverging scale = new Diverging(max);
        r.setPaintScale(scale);
        XYPlot plot = new XYPlot(ds, x, y, r);
        plot.setBackgroundPaint(Color.WHITE);
        plot.setDomainGridlinesVisible(false);
        plot.setRangeGridlinesVisible(false);
        labels.forEach(plot::addAnnotation);
        JsonNode cfg = result.path("config");
        String metric = cfg.path("metric").asText();
        String harm = (metric.equals("accuracy") || metric.equals("logit-diff") ? "drop in " : "rise in ") + metric;
        String eff = cfg.path("effect").asText().equals("auc") ? "area under the " + harm + " over the levels" : harm + " at level " + cfg.path("level").asText();
        JFreeChart chart = new JFreeChart("Specificity: " + eff + " (" + cfg.path("mode").asText() + ")",
                new Font("SansSerif", Font.BOLD, 15), plot, false);
        chart.addSubtitle(new TextTitle("cell: effect (larger = more harm) and z against " + cfg.path("baseline").asInt()
                + " random clusters; * = own topic" + (cfg.path("model").path("random_init").asBoolean() ? "  [RANDOM-INIT model]" : ""),
                new Font("SansSerif", Font.PLAIN, 11)));
        NumberAxis sa = new NumberAxis("effect");
        PaintScaleLegend legend = new PaintScaleLegend(scale, sa);
        legend.setPosition(RectangleEdge.RIGHT);
        legend.setMargin(4, 4, 4, 4);
        chart.addSubtitle(legend);
        chart.setBackgroundPaint(Color.WHITE);
        return chart;
    }

    /** Blue (helps when impaired) - white - red (harms), symmetric around 0. */
    static final class Diverging implements PaintScale {
        final double max;
        Diverging(double max) { this.max = max; }
        @Override public double getLowerBound() { return -max; }
        @Override public double getUpperBound() { return max; }
        @Override public Paint getPaint(double v) {
            if (!Double.isFinite(v)) return Color.LIGHT_GRAY;
            double t = Math.max(-1, Math.min(1, v / max));
            int a = (int) Math.round(255 * (1 - Math.abs(t)));
            return t >= 0 ? new Color(255, a, a) : new Color(a, a, 255);
        }
    }

    /** The rows of a Shapley result: {@code results} (nshap-shapley-result-1) or {@code neurons}; null when neither. */
    static JsonNode shapleyRows(JsonNode result) {
        for (String k : new String[]{"results", "neurons", "players"}) {
            JsonNode a = result.get(k);
            if (a != null && a.isArray() && !a.isEmpty() && a.get(0).isObject()) return a;
        }
        return null;
    }

    /** Players on the top-players chart: as many as stay legible at the default height. */
    public static final int TOP_PLAYERS = 20;

    /**
     * The k players of highest value, best on top, each a dot at its value with a bar over its confidence interval
     * (players without one, too few samples, get the dot alone and "no CI" in their label). This is what a Shapley
     * run is for; a per-layer box plot clipped at its whiskers hid exactly these players.
     */
    public static JFreeChart shapleyTop(JsonNode result, int k) {
        record P(String name, double v, double lo, double hi) {}
        List<P> ps = new ArrayList<>();
        for (JsonNode p : shapleyRows(result)) {
            JsonNode v = p.hasNonNull("mean") ? p.get("mean") : p.get("value");
            if (v == null || !v.isNumber()) continue;
            String name = p.path("name").asText(p.path("id").asText("player " + p.path("player").asText("?")));
            ps.add(new P(name, v.asDouble(), number(p, "ci_low", "ciLow"), number(p, "ci_high", "ciHigh")));
        }
        if (ps.isEmpty()) throw new NshapException("shapley result: no player has a value to plot");
        ps.sort((a, b) -> Double.compare(b.v, a.v));
        List<P> top = ps.subList(0, Math.min(k, ps.size()));
        YIntervalSeries s = new YIntervalSeries("value and CI");
        String[] labels = new String[top.size()];
        for (int i = 0; i < top.size(); i++) {
            P p = top.get(i);
            boolean ci = Double.isFinite(p.lo) && Double.isFinite(p.hi);
            s.add(i, p.v, ci ? p.lo : p.v, ci ? p.hi : p.v);
            labels[i] = (i + 1) + ". " + p.name + (ci ? "" : " (no CI)");
        }
        YIntervalSeriesCollection ds = new YIntervalSeriesCollection();
        ds.addSeries(s);
        SymbolAxis players = new SymbolAxis(null, labels);
        players.setInverted(true);           // rank 1 on top
        players.setGridBandsVisible(false);
        players.setTickLabelFont(new Font("SansSerif", Font.PLAIN, 10));
        NumberAxis value = new NumberAxis("Shapley value");
        value.setAutoRangeIncludesZero(true);
        org.jfree.chart.renderer.xy.XYErrorRenderer r = new org.jfree.chart.renderer.xy.XYErrorRenderer();
        r.setDrawXError(false);
        r.setDrawYError(true);
        r.setDefaultLinesVisible(false);
        r.setSeriesPaint(0, PALETTE[0]);
        r.setErrorPaint(PALETTE[0]);
        r.setErrorStroke(new BasicStroke(2f));
        r.setSeriesShape(0, new java.awt.geom.Ellipse2D.Double(-4, -4, 8, 8));
        XYPlot plot = new XYPlot(ds, players, value, r);
        plot.setOrientation(org.jfree.chart.plot.PlotOrientation.HORIZONTAL);
        plot.setBackgroundPaint(Color.WHITE);
        plot.setRangeGridlinePaint(Color.LIGHT_GRAY);
        plot.setDomainGridlinesVisible(false);
        plot.addRangeMarker(new org.jfree.chart.plot.ValueMarker(0, Color.GRAY, new BasicStroke(1f)));
        double conf = result.path("config").path("confidence").asDouble(0.95);
        JFreeChart chart = new JFreeChart("Top " + top.size() + " of " + ps.size() + " players by Shapley value",
                new Font("SansSerif", Font.BOLD, 15), plot, false);
        JsonNode g = result.path("game");
        String topic = g.isObject() ? g.path("topic").asText(g.path("dataset").asText("")) : "";
        String est = result.path("estimator").asText("");
        chart.addSubtitle(new TextTitle((topic.isEmpty() ? "" : topic + "; ") + (est.isEmpty() ? "" : est + ", ")
                + result.path("evaluations").asText("?") + " evaluations; bars: "
                + (est.equals("tmab") ? "empirical-Bernstein bound" : String.format(Locale.ROOT, "%.0f%% CI", 100 * conf)),
                new Font("SansSerif", Font.PLAIN, 11)));
        chart.setBackgroundPaint(Color.WHITE);
        return chart;
    }

    /** A number under its name or an older one (files written before the field names were unified). */
    private static double number(JsonNode p, String... names) {
        for (String n : names) if (p.hasNonNull(n) && p.get(n).isNumber()) return p.get(n).asDouble();
        return Double.NaN;
    }

    private static boolean hasLayers(JsonNode result) {
        for (JsonNode p : shapleyRows(result)) {
            if (p.has("layer") && p.get("layer").asText().matches("\\d+")) return true;
            if (NEURON.matcher(p.path("name").asText(p.path("id").asText(""))).find()) return true;
        }
        return false;
    }

    /** Box plot per layer of the neurons' Shapley values. */
    public static JFreeChart shapleyByLayer(JsonNode result) {
        Map<Integer, List<Double>> byLayer = new TreeMap<>();
        int rows = 0;
        for (JsonNode p : shapleyRows(result)) {
            String name = p.path("name").asText(p.path("id").asText(""));
            Matcher m = NEURON.matcher(name);
            JsonNode v = p.hasNonNull("mean") ? p.get("mean") : p.get("value");
            if (v == null || !v.isNumber()) continue;
            // The game's own layer column first (-1: a group spanning layers, which belongs to no single layer);
            // names only for files without that column.
            int layer;
            if (p.has("layer") && p.get("layer").asText().matches("-?\\d+")) layer = Integer.parseInt(p.get("layer").asText());
            else if (m.find()) layer = Integer.parseInt(m.group(1));
            else continue;
            if (layer < 0) continue;
            byLayer.computeIfAbsent(layer, l -> new ArrayList<>()).add(v.asDouble());
            rows++;
        }
        if (rows == 0) throw new NshapException("shapley result: no rows with a neuron name (blocks.L.mlp.hook_post[N] or [A:B]) or a layer, and a value");
        DefaultBoxAndWhiskerCategoryDataset ds = new DefaultBoxAndWhiskerCategoryDataset();
        byLayer.forEach((l, xs) -> ds.add(xs, "Shapley value", "layer " + l));
        BoxAndWhiskerRenderer r = new BoxAndWhiskerRenderer();
        r.setSeriesPaint(0, PALETTE[0]);
        r.setMeanVisible(false); // JFreeChart draws the mean as a disc a quarter of the box wide: it hides the median
        r.setMaximumBarWidth(0.12); // one layer alone would otherwise fill the plot (and its mean marker with it)
        r.setMaxOutlierVisible(true);
        r.setMinOutlierVisible(true);
        NumberAxis y = new NumberAxis("Shapley value");
        y.setAutoRangeIncludesZero(true);
        CategoryPlot plot = new CategoryPlot(ds, new CategoryAxis("layer"), y, r);
        plot.setBackgroundPaint(Color.WHITE);
        plot.setRangeGridlinePaint(Color.LIGHT_GRAY);
        JFreeChart chart = new JFreeChart("Shapley values per layer (" + rows + " players)", new Font("SansSerif", Font.BOLD, 15), plot, false);
        JsonNode g = result.path("game");
        String sub = g.isObject() ? g.path("topic").asText(g.path("dataset").asText("")) : "";
        if (!sub.isEmpty()) chart.addSubtitle(new TextTitle(sub, new Font("SansSerif", Font.PLAIN, 11)));
        chart.setBackgroundPaint(Color.WHITE);
        return chart;
    }

    /** Writes PREFIX.png and PREFIX.svg atomically. */
    public static List<Path> write(JFreeChart chart, Path prefix, int width, int height) {
        Path png = prefix.resolveSibling(prefix.getFileName() + ".png"), svg = prefix.resolveSibling(prefix.getFileName() + ".svg");
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try {
            ChartUtils.writeChartAsPNG(bytes, chart, width, height);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot render " + png + ": " + e.getMessage(), e);
        }
        SVGGraphics2D g = new SVGGraphics2D(width, height);
        chart.draw(g, new Rectangle(0, 0, width, height));
        String doc = g.getSVGDocument();
        AtomicFiles.writeBytes(png, bytes.toByteArray());
        AtomicFiles.writeBytes(svg, doc.getBytes(StandardCharsets.UTF_8));
        return List.of(png, svg);
    }

    private static String shortName(String s) {
        int i = Math.max(s.lastIndexOf('/'), s.lastIndexOf('\\'));
        return i >= 0 ? s.substring(i + 1) : s;
    }
}
