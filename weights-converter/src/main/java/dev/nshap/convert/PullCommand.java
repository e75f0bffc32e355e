package dev.nshap.convert;

import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.nio.file.Path;
import java.util.concurrent.Callable;

@Command(name = "pull", mixinStandardHelpOptions = true,
        description = {"Download a GPT-2 from the Hugging Face hub into the cache ($HF_HOME/hub, huggingface_hub's layout) "
                + "and print the directory nshap loads.",
                "NAME: gpt2, gpt2-medium, gpt2-large, gpt2-xl, distilgpt2 or ORG/NAME. Honours HF_HOME, HF_HUB_CACHE, "
                        + "HF_ENDPOINT and HF_TOKEN. Interrupted downloads resume; every file is checked against the "
                        + "hub's SHA-256; repositories with only pytorch_model.bin (or shards) are converted."})
public final class PullCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "NAME", description = "model name or ORG/NAME")
    String name;

    @Option(names = "--revision", paramLabel = "R", description = "branch, tag or commit (default: main)")
    String revision;

    @Option(names = "--endpoint", paramLabel = "URL", description = "hub URL (default: $HF_ENDPOINT or https://huggingface.co)")
    String endpoint;

    @Option(names = "--cache-dir", paramLabel = "DIR", description = "hub cache (default: $HF_HUB_CACHE or $HF_HOME/hub)")
    Path cacheDir;

    @Override
    public Integer call() {
        HubClient.Pulled p = HubClient.fromEnvironment(endpoint, cacheDir).pull(name, revision);
        System.err.println("nshap: " + p.repo() + " @ " + p.commit() + (p.converted() ? " (converted)" : ""));
        System.out.println(p.dir());
        return 0;
    }
}
