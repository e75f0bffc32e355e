package dev.nshap.bench;

import dev.nshap.io.Json;

import java.io.PrintStream;
import java.nio.file.Path;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * One benchmark run: its configuration, the peaks measured in the same run, and result rows, each a rate with
 * its timing spread and its fraction of a peak. Printed as a table on stdout and written as JSON.
 */
public final class BenchReport {
    /** A measured rate; {@code peak} names the entry of {@link #peaks} it is divided by (null: none applies). */
    public record Row(String name, Stats time, double value, String unit, String peak, Map<String, Object> extra) {}

    public record Peak(String name, double value, String unit, String how) {}

    public final String bench;
    public final Map<String, Object> config = new LinkedHashMap<>();
    public final Map<String, Object> machine;
    public final Map<String, Object> method = new LinkedHashMap<>();
    public final Map<String, Peak> peaks = new LinkedHashMap<>();
    public final List<Row> rows = new ArrayList<>();
    public final List<String> notes = new ArrayList<>();
    private final Instant started = Instant.now();

    public BenchReport(String bench, Map<String, Object> machine) {
        this.bench = bench;
        this.machine = machine;
    }

    public BenchReport row(String name, Stats time, double value, String unit, String peak) {
        rows.add(new Row(name, time, value, unit, peak, Map.of()));
        return this;
    }

    public BenchReport row(String name, Stats time, double value, String unit, String peak, Map<String, Object> extra) {
        rows.add(new Row(name, time, value, unit, peak, extra));
        return this;
    }

    public void peak(String name, double value, String unit, String how) { peaks.put(name, new Peak(name, value, unit, how)); }

    public Double fraction(Row r) {
        Peak p = r.peak == null ? null : peaks.get(r.peak);
        return p == null || p.value <= 0 ? null : r.value / p.value;
    }

    public String defaultFileName() {
        String stamp = DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss").withZone(ZoneOffset.UTC).format(started);
        return bench + "-" + config.getOrDefault("backend", "cpu") + "-" + config.getOrDefault("config", "model") + "-" + stamp + ".json";
    }

    public Map<String, Object> toJson() {
        Map<String, Object> j = new LinkedHashMap<>();
        j.put("bench", bench);
        j.put("created_utc", started.toString());
        j.put("machine", machine);
        j.put("config", config);
        j.put("method", method);
        Map<String, Object> pk = new LinkedHashMap<>();
        for (Peak p : peaks.values()) {
            Map<String, Object> e = new LinkedHashMap<>();
            e.put("value", p.value);
            e.put("unit", p.unit);
            e.put("how", p.how);
            pk.put(p.name, e);
        }
        j.put("peaks", pk);
        List<Map<String, Object>> rs = new ArrayList<>();
        for (Row r : rows) {
            Map<String, Object> e = new LinkedHashMap<>();
            e.put("name", r.name);
            e.put("value", r.value);
            e.put("unit", r.unit);
            Double f = fraction(r);
            if (f != null) {
                e.put("fraction_of_peak", f);
                e.put("peak", r.peak);
            }
            if (r.time != null) {
                Map<String, Object> t = new LinkedHashMap<>();
                t.put("median_s", r.time.median());
                t.put("p10_s", r.time.p10());
                t.put("p90_s", r.time.p90());
                t.put("min_s", r.time.min());
                t.put("max_s", r.time.max());
                t.put("spread", r.time.spread());
                t.put("n", r.time.n());
                e.put("time", t);
            }
            e.putAll(r.extra);
            rs.add(e);
        }
        j.put("results", rs);
        if (!notes.isEmpty()) j.put("notes", notes);
        return j;
    }

    public void writeJson(Path file) { Json.writeFile(file, toJson()); }

    public void printTable(PrintStream out, String title) {
        out.println(title);
        for (Map.Entry<String, Object> e : config.entrySet()) out.printf(Locale.ROOT, "  %-14s %s%n", e.getKey(), show(e.getValue()));
        out.printf(Locale.ROOT, "  %-14s %s, %s cores, %s%n", "machine", machine.get("cpu_model"), machine.get("cores"), machine.get("java"));
        if (machine.containsKey("gpu")) out.printf(Locale.ROOT, "  %-14s %s%n", "gpu", machine.get("gpu"));
        else if (machine.containsKey("cpu_gemm")) out.printf(Locale.ROOT, "  %-14s %s%n", "cpu gemm", machine.get("cpu_gemm"));
        out.printf(Locale.ROOT, "  %-14s %.2f (1-min average at start)%n", "load", ((Number) machine.get("load_average")).doubleValue());
        out.println();
        out.printf(Locale.ROOT, "  %-34s %12s %-10s %10s %10s %10s %7s %9s%n", "what", "rate", "unit", "median s", "p10 s", "p90 s", "spread", "of peak");
        for (Row r : rows) {
            Double f = fraction(r);
            String med = r.time == null ? "" : String.format(Locale.ROOT, "%.5f", r.time.median());
            String p10 = r.time == null ? "" : String.format(Locale.ROOT, "%.5f", r.time.p10());
            String p90 = r.time == null ? "" : String.format(Locale.ROOT, "%.5f", r.time.p90());
            String sp = r.time == null ? "" : String.format(Locale.ROOT, "%.1f%%", 100 * r.time.spread());
            out.printf(Locale.ROOT, "  %-34s %12s %-10s %10s %10s %10s %7s %9s%n", r.name, fmt(r.value), r.unit, med, p10, p90, sp,
                    f == null ? "" : String.format(Locale.ROOT, "%.1f%%", 100 * f));
        }
        if (!peaks.isEmpty()) {
            out.println();
            for (Peak p : peaks.values())
                out.printf(Locale.ROOT, "  peak %-28s %12s %-10s %s%n", p.name, fmt(p.value), p.unit, p.how);
        }
        for (String n : notes) out.println("  note: " + n);
    }

    static String fmt(double v) {
        if (v >= 1e5) return String.format(Locale.ROOT, "%.0f", v);
        if (v >= 100) return String.format(Locale.ROOT, "%.1f", v);
        return String.format(Locale.ROOT, "%.3f", v);
    }

    /** Table text for a configuration value: fractions and rates to 3 significant digits (the JSON keeps them whole). */
    private static String show(Object v) {
        if (v instanceof Double || v instanceof Float) return String.format(Locale.ROOT, "%.3g", ((Number) v).doubleValue());
        if (v instanceof Map<?, ?> m) {
            StringBuilder b = new StringBuilder("{");
            new java.util.TreeMap<>(m).forEach((k, x) -> b.append(b.length() > 1 ? ", " : "").append(k).append('=').append(show(x)));
            return b.append('}').toString();
        }
        return String.valueOf(v);
    }
}
