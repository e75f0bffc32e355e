package dev.nshap.cli;

import dev.nshap.NshapException;
import dev.nshap.backend.cuda.CudaDevice;
import picocli.CommandLine.Command;

import java.util.concurrent.Callable;

/** {@code nshap cuda-info}: whether the CUDA backend can run here, and on what; exit code 2 when it cannot. */
@Command(name = "cuda-info", mixinStandardHelpOptions = true,
        description = "Says whether the CUDA backend can run here (GPU, compute capability, free memory) or why not.")
public final class CudaInfoCommand implements Callable<Integer> {
    @Override public Integer call() {
        String why = CudaDevice.unavailableReason();
        if (why != null) throw new NshapException("CUDA backend unavailable: " + why);
        CudaDevice d = CudaDevice.get();
        long[] mem = d.memInfo();
        System.out.println("cuda: " + d.describe() + ", " + (mem[0] >> 20) + " MiB free of " + (mem[1] >> 20) + " MiB");
        return 0;
    }
}
