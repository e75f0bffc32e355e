package dev.nshap.cli;

import dev.nshap.backend.Backend;
import dev.nshap.backend.Backends;
import dev.nshap.model.GPT2Weights;
import picocli.CommandLine.Option;

/** {@code @Mixin} for commands that run the model: they open their backend only through {@link #open}. */
public final class BackendOptions {
    @Option(names = "--backend", defaultValue = "auto", paramLabel = "cpu|cuda|auto",
            description = "Where the forward pass runs: cpu, cuda (fails with exit code 2 if no usable GPU), "
                    + "auto (cuda when available, else cpu). Default: ${DEFAULT-VALUE}.")
    public String backend = "auto";

    @Option(names = "--precision", defaultValue = "fp32", paramLabel = "fp32|bf16",
            description = "CUDA precision: fp32 (exact, for comparisons) or bf16 (tensor cores). Default: ${DEFAULT-VALUE}.")
    public String precision = "fp32";

    @Option(names = "--gemm", defaultValue = "own", paramLabel = "own|cublas",
            description = "CUDA GEMMs: the nshap kernels (own) or cuBLAS (needs libcublas.so.12). Default: ${DEFAULT-VALUE}.")
    public String gemm = "own";

    public Backend open(GPT2Weights w) {
        if (!gemm.equals("own") && !gemm.equals("cublas"))
            throw new dev.nshap.NshapException("unknown --gemm '" + gemm + "' (expected own or cublas)");
        System.setProperty("nshap.gemm", gemm);
        return Backends.open(backend, w, precision);
    }
}
