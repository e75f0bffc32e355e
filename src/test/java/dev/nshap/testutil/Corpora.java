package dev.nshap.testutil;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** The shared real corpora ({@code ../shared/corpora} beside the repository); tests skip when they are absent. */
public final class Corpora {
    private Corpora() {}

    /** The corpora folder, found by walking up from the working directory, or null. */
    public static Path root() {
        for (Path p = Path.of("").toAbsolutePath(); p != null; p = p.getParent()) {
            Path c = p.resolve("shared").resolve("corpora");
            if (Files.isDirectory(c)) return c;
        }
        return null;
    }

    /** A file under the corpora folder; skips the calling test when it is not there. */
    public static Path require(String relative) {
        Path r = root();
        assumeTrue(r != null, "no shared/corpora folder beside the repository: skipping a real-corpus test");
        Path f = r.resolve(relative);
        assumeTrue(Files.isRegularFile(f), "corpus file " + f + " is absent: skipping");
        return f;
    }
}
