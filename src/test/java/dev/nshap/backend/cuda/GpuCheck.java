package dev.nshap.backend.cuda;

import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.launcher.Launcher;
import org.junit.platform.launcher.LauncherDiscoveryRequest;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestIdentifier;
import org.junit.platform.launcher.core.LauncherDiscoveryRequestBuilder;
import org.junit.platform.launcher.core.LauncherFactory;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.platform.engine.discovery.DiscoverySelectors.selectClass;

/**
 * The GPU check's runner (scripts/gpu-check.sh): runs one test class, prints every test's outcome with its full
 * failure, and appends one line to the summary file: {@code Class: passed P, failed F, skipped S} and, when
 * something failed, the first failing test and its message. Exit 0 when nothing failed, 1 otherwise.
 *
 * <p>{@code java -cp nshap.jar:tests.jar:junit/* dev.nshap.backend.cuda.GpuCheck CLASS SUMMARY_FILE}
 */
public final class GpuCheck {
    private GpuCheck() {}

    public static void main(String[] args) throws Exception {
        String cls = args[0];
        Path summary = args.length > 1 ? Path.of(args[1]) : null;
        AtomicInteger passed = new AtomicInteger(), failed = new AtomicInteger(), skipped = new AtomicInteger();
        String[] first = {null};
        long t0 = System.nanoTime();
        TestExecutionListener l = new TestExecutionListener() {
            @Override public void executionSkipped(TestIdentifier id, String reason) {
                if (id.isTest() || id.isContainer() && id.getSource().isPresent()) {
                    skipped.incrementAndGet();
                    System.out.println("SKIPPED " + id.getDisplayName() + ": " + reason);
                }
            }

            @Override public void executionFinished(TestIdentifier id, TestExecutionResult r) {
                boolean bad = r.getStatus() != TestExecutionResult.Status.SUCCESSFUL;
                if (!id.isTest() && !bad) return;
                if (r.getStatus() == TestExecutionResult.Status.ABORTED) {
                    skipped.incrementAndGet();
                    System.out.println("SKIPPED " + id.getDisplayName() + ": " + r.getThrowable().map(Throwable::getMessage).orElse(""));
                    return;
                }
                if (!bad) {
                    passed.incrementAndGet();
                    System.out.println("PASSED  " + id.getDisplayName());
                    return;
                }
                failed.incrementAndGet();
                Throwable t = r.getThrowable().orElse(null);
                String msg = t == null ? "no detail" : t.getClass().getSimpleName() + ": " + String.valueOf(t.getMessage()).replace('\n', ' ');
                if (first[0] == null) first[0] = id.getDisplayName() + ": " + (msg.length() > 400 ? msg.substring(0, 400) + "..." : msg);
                System.out.println("FAILED  " + id.getDisplayName() + ": " + msg);
                if (t != null) {
                    StringWriter sw = new StringWriter();
                    t.printStackTrace(new PrintWriter(sw));
                    System.out.println(sw);
                }
            }
        };
        LauncherDiscoveryRequest req = LauncherDiscoveryRequestBuilder.request().selectors(selectClass(cls)).build();
        Launcher launcher = LauncherFactory.create();
        launcher.execute(req, l);
        String simple = cls.substring(cls.lastIndexOf('.') + 1);
        String line = String.format("%s: %s (passed %d, failed %d, skipped %d, %.0f s)%s", simple,
                failed.get() > 0 ? "FAILED" : passed.get() == 0 ? "SKIPPED" : "passed", passed.get(), failed.get(), skipped.get(),
                (System.nanoTime() - t0) / 1e9, first[0] == null ? "" : "; first failure: " + first[0]);
        System.out.println(line);
        if (summary != null) Files.writeString(summary, line + "\n", StandardOpenOption.CREATE, StandardOpenOption.APPEND);
        System.exit(failed.get() > 0 ? 1 : 0);
    }
}
