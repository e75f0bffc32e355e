package dev.nshap.convert;

import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

import java.nio.file.Path;
import java.util.concurrent.Callable;

@Command(name = "verify", mixinStandardHelpOptions = true,
        description = "Check a model directory against its manifest.json: exit 0 and 'ok' when every file matches, "
                + "exit 2 naming the first missing or differing file.")
public final class VerifyCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "DIR", description = "model directory holding manifest.json")
    Path dir;

    @Override
    public Integer call() {
        int n = Manifest.verify(dir);
        System.out.println("ok: " + n + " files match " + dir.resolve(Manifest.FILE));
        return 0;
    }
}
