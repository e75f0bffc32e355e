package dev.nshap.backend;

import dev.nshap.NshapException;
import dev.nshap.backend.cpu.CpuBackend;
import dev.nshap.model.GPT2Weights;

/** Opens a backend by name: cpu, cuda, or auto (cuda where it works, else cpu). */
public final class Backends {
    private Backends() {}

    public static Backend open(String name, GPT2Weights w, String precision) {
        if (!precision.equals("fp32") && !precision.equals("bf16"))
            throw new NshapException("unknown precision '" + precision + "' (fp32|bf16)");
        return switch (name) {
            case "cpu" -> {
                if (precision.equals("bf16")) throw new NshapException("the CPU backend computes in fp32 only (use --precision fp32)");
                yield new CpuBackend(w);
            }
            case "auto" -> new CpuBackend(w);
            case "cuda" -> throw new NshapException("--backend cuda: this build has no CUDA backend");
            default -> throw new NshapException("unknown backend '" + name + "' (cpu|cuda|auto)");
        };
    }
}
