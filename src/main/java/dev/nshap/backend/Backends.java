package dev.nshap.backend;

import dev.nshap.NshapException;
import dev.nshap.backend.cpu.CpuBackend;
import dev.nshap.backend.cuda.CudaBackend;
import dev.nshap.backend.cuda.CudaDevice;
import dev.nshap.model.GPT2Weights;

import java.io.PrintStream;

/** The one place commands get a backend from: {@code --backend cpu|cuda|auto} and {@code --precision fp32|bf16}. */
public final class Backends {
    private Backends() {}

    private static boolean gemmNoted;

    /** Once per run: the CPU GEMM fell back to the Java kernels although nobody asked (OpenBLAS missing or broken). */
    private static synchronized void noteGemm(PrintStream notes) {
        String note = dev.nshap.backend.cpu.Gemm.fallbackNote();
        if (note != null && !gemmNoted) {
            gemmNoted = true;
            notes.println("nshap: " + note);
        }
    }

    public static Backend open(String name, GPT2Weights w, String precision) {
        return open(name, w, precision, System.err);
    }

    /**
     * auto: the CUDA backend when it can run here, else the CPU backend (silently: the command's header names the
     * backend chosen, and {@code nshap cuda-info} says why there is no GPU); cuda: the CUDA backend or an
     * {@link NshapException} (exit code 2) saying why it cannot run. {@code notes} gets only bf16 falling back to fp32
     * and, once, a CPU GEMM that fell back to the Java kernels.
     */
    public static Backend open(String name, GPT2Weights w, String precision, PrintStream notes) {
        String b = name == null ? "auto" : name.toLowerCase();
        String p = precision == null ? "fp32" : precision.toLowerCase();
        if (!p.equals("fp32") && !p.equals("bf16"))
            throw new NshapException("unknown precision '" + precision + "' (expected fp32 or bf16)");
        switch (b) {
            case "cpu" -> {
                if (p.equals("bf16")) throw new NshapException("the CPU backend computes in fp32 only (use --precision fp32)");
                noteGemm(notes);
                return new CpuBackend(w);
            }
            case "cuda" -> {
                String why = CudaDevice.unavailableReason();
                if (why != null) throw new NshapException("--backend cuda: " + why);
                return new CudaBackend(w, p);
            }
            case "auto" -> {
                String why = CudaDevice.unavailableReason();
                if (why == null) return new CudaBackend(w, p);
                if (p.equals("bf16")) notes.println("nshap: no usable GPU (" + why + "): the CPU backend computes in fp32, not bf16");
                noteGemm(notes);
                return new CpuBackend(w);
            }
            default -> throw new NshapException("unknown backend '" + name + "' (expected cpu, cuda or auto)");
        }
    }
}
