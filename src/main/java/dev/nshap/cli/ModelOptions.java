package dev.nshap.cli;

import dev.nshap.NshapException;
import dev.nshap.backend.Backend;
import dev.nshap.backend.Backends;
import dev.nshap.model.Checkpoint;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.GPT2Weights;
import dev.nshap.model.ModelInit;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The options every model-running command shares (a picocli mixin): which checkpoint, which backend.
 * Without --model the bundled default model is used; until a trained one ships, a random-init model is
 * created on first use, and every output says so.
 */
public final class ModelOptions {
    @Option(names = "--model", paramLabel = "DIR",
            description = "Hugging Face GPT-2 checkpoint directory (config.json + model.safetensors). Default: the bundled model.")
    public Path model;

    @Option(names = "--backend", defaultValue = "auto", description = "cpu | cuda | auto (default: ${DEFAULT-VALUE})")
    public String backend;

    @Option(names = "--precision", defaultValue = "fp32", description = "fp32 | bf16 (bf16: CUDA only; default: ${DEFAULT-VALUE})")
    public String precision;

    @Option(names = "--allow-nonfinite-weights",
            description = "load a checkpoint with NaN or infinite weights, warning, instead of refusing it")
    public boolean allowNonFinite;

    /** The repository root when running from the built jar or the source tree; used to find models/. */
    public static Path projectRoot() {
        String env = System.getenv("NSHAP_HOME");
        if (env != null && !env.isEmpty()) return Path.of(env);
        try {
            Path jar = Path.of(ModelOptions.class.getProtectionDomain().getCodeSource().getLocation().toURI());
            for (Path p = jar; p != null; p = p.getParent())
                if (Files.isDirectory(p.resolve("models")) || Files.isRegularFile(p.resolve("pom.xml"))) return p;
        } catch (Exception ignored) { }
        return Path.of("").toAbsolutePath();
    }

    /** models/default when it exists, else a random-init stand-in (created once under models/random-init). */
    public static Path defaultModel() {
        Path root = projectRoot();
        Path trained = root.resolve("models").resolve("default");
        if (Files.isRegularFile(trained.resolve(Checkpoint.CONFIG))) return trained;
        Path random = root.resolve("models").resolve("random-init");
        if (!Files.isRegularFile(random.resolve(Checkpoint.WEIGHTS))) {
            GPT2Config c = new GPT2Config(4, 4, 256, 128, GPT2Config.GPT2_VOCAB, 1e-5, "gelu_new");
            System.err.println("[nshap] no trained default model: creating a RANDOM-INIT stand-in at " + random);
            Map<String, String> meta = new LinkedHashMap<>();
            meta.put("nshap_init", "huggingface-gpt2");
            meta.put("nshap_seed", "1234");
            Checkpoint.write(random, ModelInit.random(c, 1234), "F32", meta);
        }
        return random;
    }

    public Path modelDir() { return model != null ? model : defaultModel(); }

    public Checkpoint.LoadedModel load() {
        Path dir = modelDir();
        if (!Files.isDirectory(dir)) throw new NshapException("--model " + dir + ": no such directory");
        Checkpoint.LoadedModel m = Checkpoint.load(dir, allowNonFinite);
        if (isRandomInit(dir))
            System.err.println("[nshap] NOTE: " + dir + " is a RANDOM-INIT model: its attributions describe no learnt behaviour");
        return m;
    }

    /** True for checkpoints written by {@code nshap model init} (they carry nshap_init metadata). */
    public static boolean isRandomInit(Path dir) {
        try {
            return Checkpoint.inspect(dir).file().metadata().containsKey("nshap_init");
        } catch (NshapException e) {
            return false;
        }
    }

    /** The backend, named once in the run's header on stderr (with auto, the user learns here which one ran). */
    public Backend open(GPT2Weights w) {
        Backend b = Backends.open(backend, w, precision);
        System.err.println("[nshap] backend " + b.name() + ("auto".equalsIgnoreCase(backend) ? " (auto)" : "")
                + ", model " + modelDir());
        return b;
    }
}
