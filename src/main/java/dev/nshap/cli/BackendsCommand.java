package dev.nshap.cli;

import dev.nshap.backend.cpu.Gemm;
import dev.nshap.backend.cuda.CudaDevice;
import picocli.CommandLine.Command;

import java.util.concurrent.Callable;

/** {@code nshap backends}: what each backend runs on here; the CPU line names the GEMM (OpenBLAS or pure Java). */
@Command(name = "backends", mixinStandardHelpOptions = true,
        description = {"Says which backends can run here and on what: the CPU backend's GEMM (OpenBLAS, or the pure-Java "
                + "Vector-API kernels and why), and whether the CUDA backend can run.",
                "-Dnshap.gemm=java or NSHAP_GEMM=java forces the Java kernels; NSHAP_GEMM_THREADS sets OpenBLAS's threads."})
public final class BackendsCommand implements Callable<Integer> {
    @Override public Integer call() {
        System.out.println("cpu: " + Runtime.getRuntime().availableProcessors() + " cores, "
                + jdk.incubator.vector.FloatVector.SPECIES_PREFERRED.vectorBitSize() + "-bit vectors; GEMM: " + Gemm.describe());
        String why = CudaDevice.unavailableReason();
        System.out.println("cuda: " + (why == null ? CudaDevice.get().describe() : "unavailable (" + why + ")"));
        return 0;
    }
}
