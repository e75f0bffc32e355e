package dev.nshap.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.nshap.io.Json;
import dev.nshap.plot.Charts;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.nio.file.Path;

@Command(name = "plot", mixinStandardHelpOptions = true,
        description = "Chart a result file as PNG + SVG: impairment curves with baseline bands, the specificity heat map, "
                + "or the per-layer distribution of Shapley values; the chart follows the result's format.")
public final class PlotCommand implements Runnable {
    @Parameters(index = "0", paramLabel = "RESULT.json") Path result;

    @Option(names = "--out", paramLabel = "PREFIX", description = "output prefix (default: the result's path without .json)")
    Path out;

    @Option(names = "--width", defaultValue = "" + Charts.WIDTH, description = "pixels (default: ${DEFAULT-VALUE})") int width;
    @Option(names = "--height", defaultValue = "" + Charts.HEIGHT, description = "pixels (default: ${DEFAULT-VALUE})") int height;

    @Override public void run() {
        JsonNode r = Json.readTree(result);
        Path prefix = out != null ? out : result.resolveSibling(result.getFileName().toString().replaceFirst("\\.json$", ""));
        for (Path p : Charts.plot(r, prefix, width, height)) System.out.println("wrote " + p);
    }
}
