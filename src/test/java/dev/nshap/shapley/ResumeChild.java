package dev.nshap.shapley;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * Run in a child JVM by {@link ResumeAndShardTest}: a slowed-down game so the parent can kill it mid-run.
 * Args: estimator, output prefix, checkpointEvery, delay ms per batch[, batches run at full speed first].
 */
public final class ResumeChild {
    static Game game() { return SyntheticGames.topKGame(40, 4, 6, 1.0, 3); }

    static ShapleyConfig config(Estimator e, Path prefix, long checkpointEvery, int batch, boolean resume) {
        return ShapleyConfig.builder(e).seed(77).budget(4000).topK(4).round(3).batch(batch)
                .checkpointEvery(checkpointEvery).out(prefix).resume(resume).build();
    }

    /** Same values and description as the wrapped game, slower, and says when it starts working. */
    static Game slow(Game g, long delayMs) { return slow(g, delayMs, 0); }

    /** The first {@code fastCalls} calls at full speed, then {@code delayMs} each (a big model's batch). */
    static Game slow(Game g, long delayMs, int fastCalls) {
        return new Game() {
            boolean announced;
            int calls;
            @Override public int players() { return g.players(); }
            @Override public double[] values(List<Coalition> cs) {
                if (calls++ < fastCalls) return g.values(cs);
                if (!announced) { System.out.println("running"); System.out.flush(); announced = true; }
                try { Thread.sleep(delayMs); } catch (InterruptedException e) { Thread.currentThread().interrupt(); }
                return g.values(cs);
            }
            @Override public Map<String, Object> describe() { return g.describe(); }
            @Override public double[] exactValues() { return g.exactValues(); }
        };
    }

    public static void main(String[] args) {
        Estimator e = Estimator.parse(args[0]);
        ShapleyConfig cfg = config(e, Path.of(args[1]), Long.parseLong(args[2]), 4, false);
        int fast = args.length > 4 ? Integer.parseInt(args[4]) : 0;
        new ShapleyRunner(slow(game(), Long.parseLong(args[3]), fast), cfg).progress(false).run();
        System.out.println("finished");
    }
}
