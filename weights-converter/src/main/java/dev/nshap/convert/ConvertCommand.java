package dev.nshap.convert;

import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;

@Command(name = "convert", mixinStandardHelpOptions = true,
        description = {"Convert a GPT-2 checkpoint to the Hugging Face layout nshap loads (config.json + model.safetensors "
                + "+ manifest.json with SHA-256 checksums).",
                "Reads: a Hugging Face directory (model.safetensors, sharded model.safetensors.index.json, pytorch_model.bin "
                        + "or its sharded index), a single .safetensors / torch.save file (zip or legacy, read without executing "
                        + "its pickle), or an llm.c checkpoint (gpt2_124M.bin, fp32 or bf16)."})
public final class ConvertCommand implements Callable<Integer> {
    @Option(names = "--from", required = true, paramLabel = "DIR|FILE", description = "checkpoint directory or file")
    Path from;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "output directory (must be new or empty unless --force)")
    Path out;

    @Option(names = "--dtype", paramLabel = "f32|bf16|f16",
            description = "dtype of the written weights (default: the source's; f64 sources become f32)")
    String dtype;

    @Option(names = "--force", description = "replace the files of an existing non-empty output directory")
    boolean force;

    @Override
    public Integer call() {
        Converter.Result r = Converter.convert(from, out, dtype, force);
        System.out.printf(Locale.ROOT, "converted %s (%s) -> %s [%s]: %.1f MB in %.2f s, %.1f MB/s%n", from, r.format(), r.out(),
                r.dtype(), r.inputBytes() / 1e6, r.seconds(), r.mbPerSecond());
        return 0;
    }
}
