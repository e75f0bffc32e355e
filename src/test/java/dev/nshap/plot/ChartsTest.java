package dev.nshap.plot;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nshap.NshapException;
import dev.nshap.io.Json;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.w3c.dom.Element;

import javax.imageio.ImageIO;
import javax.xml.parsers.DocumentBuilderFactory;
import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

class ChartsTest {
    @TempDir Path dir;

    static ObjectNode impairment() {
        ObjectNode o = Json.MAPPER.createObjectNode();
        o.put("format", "nshap-impairment-1");
        ObjectNode c = o.putObject("config");
        c.put("cluster", "results/x/athlete.json");
        c.put("site", "blocks.*.mlp.hook_post");
        c.put("mode", "noise");
        c.put("seeds", 3);
        ArrayNode curves = o.putArray("curves");
        for (String metric : new String[]{"accuracy", "loss"})
            for (String ds : new String[]{"athlete", "artist"}) {
                ObjectNode cv = curves.addObject();
                cv.put("dataset", ds).put("metric", metric).put("baseline_clusters", 5).put("higher_is_better", metric.equals("accuracy"));
                cv.putObject("clean").put("mean", metric.equals("loss") ? 2.0 : 0.9);
                ArrayNode pts = cv.putArray("points");
                for (int i = 0; i <= 10; i++) {
                    double x = i * 0.2, m = metric.equals("loss") ? 2 + x * (ds.equals("athlete") ? 1.5 : 0.3) : 0.9 - x * 0.2;
                    pts.addObject().put("level", x).put("mean", m).put("ci_low", m - 0.05).put("ci_high", m + 0.05)
                            .put("harm", x * 0.1).put("harm_ci_low", x * 0.08).put("harm_ci_high", x * 0.12)
                            .put("baseline_mean", m * 0.9).put("baseline_low", m * 0.85).put("baseline_high", m * 0.95);
                }
            }
        return o;
    }

    static ObjectNode specificity() {
        ObjectNode o = Json.MAPPER.createObjectNode();
        o.put("format", "nshap-specificity-1");
        o.putObject("config").put("metric", "accuracy").put("effect", "drop").put("level", 2.0).put("mode", "noise").put("baseline", 10);
        String[] t = {"athlete", "artist", "company"};
        ArrayNode cl = o.putArray("clusters"), ds = o.putArray("datasets"), cells = o.putArray("cells");
        for (int i = 0; i < 3; i++) {
            cl.addObject().put("name", t[i] + "-cluster").put("specific", i == 0);
            ds.addObject().put("name", t[i]);
        }
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++) {
                ObjectNode x = cells.addObject().put("cluster", t[i] + "-cluster").put("dataset", t[j]).put("own", i == j)
                        .put("effect", i == j ? 0.4 : -0.05 + 0.03 * j);
                if (i == 2 && j == 1) x.putNull("z"); else x.put("z", i == j ? 6.0 : 0.3);
            }
        return o;
    }

    static ObjectNode shapley() {
        ObjectNode o = Json.MAPPER.createObjectNode();
        o.put("format", "nshap-shapley-result-1");
        ArrayNode rs = o.putArray("results");
        Random r = new Random(1);
        for (int l = 0; l < 4; l++)
            for (int n = 0; n < 50; n++)
                rs.addObject().put("rank", 1).put("name", "blocks." + l + ".mlp.hook_post[" + n + "]").put("mean", r.nextGaussian() * (l + 1) * 0.01);
        // neuron groups as the GPT-2 game names them, and a not-yet-sampled player (null mean) that is skipped
        rs.addObject().put("name", "blocks.5.mlp.hook_post[32:64]").put("mean", 0.02);
        rs.addObject().put("name", "blocks.6.mlp.hook_post[0]").putNull("mean");
        return o;
    }

    static void assertValidPng(Path p, int w, int h) throws Exception {
        BufferedImage img = ImageIO.read(p.toFile());
        assertNotNull(img, p + " is not a readable PNG");
        assertEquals(w, img.getWidth());
        assertEquals(h, img.getHeight());
        // a chart, not a blank canvas: many distinct colours
        java.util.Set<Integer> colours = new java.util.HashSet<>();
        for (int y = 0; y < h; y += 3) for (int x = 0; x < w; x += 3) colours.add(img.getRGB(x, y));
        assertTrue(colours.size() > 20, p + " has only " + colours.size() + " colours");
    }

    static void assertValidSvg(Path p, int w, int h) throws Exception {
        var f = DocumentBuilderFactory.newInstance();
        f.setNamespaceAware(true);
        f.setFeature("http://apache.org/xml/features/nonvalidating/load-external-dtd", false); // no network for the DOCTYPE
        Element root = f.newDocumentBuilder().parse(p.toFile()).getDocumentElement();
        assertEquals("svg", root.getLocalName());
        assertEquals(w, Double.parseDouble(root.getAttribute("width").replace("px", "")), 1e-9);
        assertEquals(h, Double.parseDouble(root.getAttribute("height").replace("px", "")), 1e-9);
        assertTrue(Files.size(p) > 2000);
    }

    @Test void everyResultTypeGetsItsChartAsValidPngAndSvg() throws Exception {
        List<Path> a = Charts.plot(impairment(), dir.resolve("imp"), 640, 400);
        assertEquals(List.of(dir.resolve("imp-accuracy.png"), dir.resolve("imp-accuracy.svg"), dir.resolve("imp-accuracy-harm.png"),
                dir.resolve("imp-accuracy-harm.svg"), dir.resolve("imp-loss.png"), dir.resolve("imp-loss.svg"), dir.resolve("imp-loss-harm.png"),
                dir.resolve("imp-loss-harm.svg")), a);
        List<Path> b = Charts.plot(specificity(), dir.resolve("spec"), 700, 500);
        List<Path> c = Charts.plot(shapley(), dir.resolve("shap"), 800, 450);
        for (Path p : a) if (p.toString().endsWith(".png")) assertValidPng(p, 640, 400); else assertValidSvg(p, 640, 400);
        assertValidPng(b.get(0), 700, 500);
        assertValidSvg(b.get(1), 700, 500);
        assertEquals(List.of(dir.resolve("shap.png"), dir.resolve("shap.svg"), dir.resolve("shap-layers.png"), dir.resolve("shap-layers.svg")), c);
        assertValidPng(c.get(0), 800, 450);
        assertValidSvg(c.get(1), 800, 450);
        assertValidPng(c.get(2), 800, 450);
        // the charts carry the data: the heat map labels its cells, the box plot its layers
        String svg = Files.readString(b.get(1));
        assertTrue(svg.contains("z 6.0") && svg.contains("athlete-cluster (specific)"), "heat map labels");
        String shap = Files.readString(c.get(3));
        assertTrue(shap.contains("layer 3") && shap.contains("layer 5") && !shap.contains("layer 6") && shap.contains("(201 players)"));
        try (var files = Files.list(dir)) { assertTrue(files.noneMatch(p -> p.getFileName().toString().endsWith(".tmp"))); }
    }

    /**
     * Impairment curves: only the random baseline is a band (the curves' own CIs are thin lines, out of the
     * legend), and the legend of the harm chart says which band is the random baseline.
     */
    @Test void impairmentBandsAreTheRandomBaselineOnlyAndTheLegendSaysSo() {
        for (boolean harm : new boolean[]{false, true}) {
            var chart = Charts.impairment(impairment(), "loss", harm);
            var plot = (org.jfree.chart.plot.XYPlot) chart.getPlot();
            var ds = (org.jfree.data.xy.YIntervalSeriesCollection) plot.getDataset();
            var r = plot.getRenderer();
            java.util.List<String> legend = new java.util.ArrayList<>();
            for (int i = 0; i < ds.getSeriesCount(); i++) {
                String key = ds.getSeriesKey(i).toString();
                boolean band = false;
                for (int j = 0; j < ds.getItemCount(i); j++) band |= ds.getEndYValue(i, j) > ds.getStartYValue(i, j);
                assertEquals(key.contains("random clusters"), band, key + ": a band only for the random baseline");
                if (r.isSeriesVisibleInLegend(i)) legend.add(key);
            }
            assertEquals(List.of("athlete: the cluster", "athlete: 5 random clusters (grey band: mean +- 1.96 sd)",
                    "artist: the cluster", "artist: 5 random clusters (grey band: mean +- 1.96 sd)"), legend, "harm " + harm);
            // the curve's own interval is still drawn, as its two CI lines
            assertEquals(harm ? 0.08 * 0.2 : 2 + 0.2 * 1.5 - 0.05, ds.getYValue(1, 1), 1e-12);
        }
    }

    /** The main Shapley chart names the top players in rank order, with their intervals, not a per-layer summary. */
    @Test void shapleyChartShowsTheTopPlayersWithTheirIntervals() throws Exception {
        ObjectNode o = shapley();
        ArrayNode rs = (ArrayNode) o.get("results");
        // the best player, far above the rest, which a box plot clipped at its whiskers would not show
        rs.addObject().put("name", "blocks.2.mlp.hook_post[999]").put("mean", 5.0).put("ci_low", 4.0).put("ci_high", 6.0);
        rs.addObject().put("name", "blocks.1.mlp.hook_post[998]").put("mean", 4.0);   // one sample: no interval
        List<Path> c = Charts.plot(o, dir.resolve("top"), 800, 600);
        String svg = Files.readString(c.get(1));
        int first = svg.indexOf("1. blocks.2.mlp.hook_post[999]"), second = svg.indexOf("2. blocks.1.mlp.hook_post[998] (no CI)");
        assertTrue(first >= 0 && second >= 0, "the top players are labelled in rank order");
        assertTrue(svg.contains("Top " + Charts.TOP_PLAYERS + " of 203 players"), "title says how many of how many");
        assertFalse(svg.contains("21. "), "only the top " + Charts.TOP_PLAYERS);
        // the interval of rank 1 spans 4..6 on the value axis: its bar reaches past the next player's dot
        var plot = (org.jfree.chart.plot.XYPlot) Charts.shapleyTop(o, Charts.TOP_PLAYERS).getPlot();
        var ds = (org.jfree.data.xy.YIntervalSeriesCollection) plot.getDataset();
        assertEquals(4.0, ds.getStartYValue(0, 0), 0);
        assertEquals(6.0, ds.getEndYValue(0, 0), 0);
        assertEquals(4.0, ds.getStartYValue(0, 1), 0);   // no CI: a dot, no bar
    }

    @Test void unknownResultsAndBadSizesAreRefused() {
        JsonNode other = Json.MAPPER.createObjectNode().put("format", "something-else");
        assertThrows(NshapException.class, () -> Charts.plot(other, dir.resolve("x"), 500, 500));
        assertThrows(NshapException.class, () -> Charts.plot(impairment(), dir.resolve("x"), 5, 500));
        ObjectNode noValues = Json.MAPPER.createObjectNode();
        noValues.putArray("results").addObject().put("name", "player 3").putNull("mean");
        assertThrows(NshapException.class, () -> Charts.plot(noValues, dir.resolve("x"), 500, 500));
        assertFalse(Files.exists(dir.resolve("x.png")), "nothing written for a refused result");
        // a synthetic game's players are not neurons: its top players, and no per-layer chart
        ObjectNode noNames = Json.MAPPER.createObjectNode();
        noNames.putArray("results").addObject().put("name", "player 3").put("mean", 1.0);
        assertEquals(List.of(dir.resolve("y.png"), dir.resolve("y.svg")), Charts.plot(noNames, dir.resolve("y"), 500, 500));
    }
}
