package dev.nshap.util;

import java.io.PrintStream;
import java.util.Locale;

/** Progress on stderr (count, rate, ETA), at most a few times a second; results never go here. */
public final class Progress {
    private final String what;
    private final long total;
    private final PrintStream err;
    private final long start = System.nanoTime();
    private long lastPrint = 0, base = 0;
    private final boolean tty = System.console() != null;

    public Progress(String what, long total) { this(what, total, System.err); }

    public Progress(String what, long total, PrintStream err) {
        this.what = what;
        this.total = total;
        this.err = err;
    }

    /** Work already done before this run (a resumed checkpoint): the rate and ETA count only what this run does. */
    public Progress from(long doneBefore) {
        base = doneBefore;
        return this;
    }

    /** Reports {@code done} of the total; {@code extra} is appended (e.g. "unsettled 37"). */
    public void update(long done, String extra) {
        long now = System.nanoTime();
        if (done < total && now - lastPrint < (tty ? 250_000_000L : 5_000_000_000L)) return;
        lastPrint = now;
        double secs = (now - start) / 1e9;
        double rate = secs > 0 ? (done - base) / secs : 0;
        String eta = rate > 0 && total > 0 ? formatSeconds((total - done) / rate) : "?";
        String line = String.format(Locale.ROOT, "%s %d/%d (%.1f%%) %.1f/s ETA %s%s", what, done, total,
                total > 0 ? 100.0 * done / total : 0, rate, eta, extra == null || extra.isEmpty() ? "" : " " + extra);
        if (tty) err.print("\r" + line + "\u001b[K"); else err.println(line);
        if (done >= total && tty) err.println();
        err.flush();
    }

    public void update(long done) { update(done, null); }

    public double elapsedSeconds() { return (System.nanoTime() - start) / 1e9; }

    public static String formatSeconds(double s) {
        if (!Double.isFinite(s)) return "?";
        long t = Math.round(s);
        return t >= 3600 ? String.format(Locale.ROOT, "%dh%02dm", t / 3600, (t / 60) % 60)
                : t >= 60 ? String.format(Locale.ROOT, "%dm%02ds", t / 60, t % 60) : t + "s";
    }
}
