package dev.nshap.bench;

import dev.nshap.NshapException;
import dev.nshap.backend.cuda.CudaDevice;
import dev.nshap.backend.cuda.CudaKernels;
import jcuda.Pointer;
import jcuda.cudaDataType;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUevent;
import jcuda.driver.CUevent_flags;
import jcuda.jcublas.JCublas2;
import jcuda.jcublas.cublasComputeType;
import jcuda.jcublas.cublasGemmAlgo;
import jcuda.jcublas.cublasHandle;
import jcuda.jcublas.cublasOperation;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;

import static jcuda.driver.JCudaDriver.*;

/**
 * The GPU side of the benchmarks, through JCuda: device-side timing with CUDA events on the null stream (where
 * the nshap kernels run), the copy-bandwidth and GEMM peaks, and cuBLAS as the reference GEMM. Every entry
 * point goes through {@link #open()}, which fails with one line (exit code 2) where no usable GPU is present.
 */
public final class GpuBench implements AutoCloseable {
    public final CudaDevice dev;
    public final CudaKernels kernels;
    private final CUevent start = new CUevent(), stop = new CUevent();
    private cublasHandle cublas;

    private GpuBench(CudaDevice dev) {
        this.dev = dev;
        this.kernels = new CudaKernels(dev);
        cuEventCreate(start, CUevent_flags.CU_EVENT_DEFAULT);
        cuEventCreate(stop, CUevent_flags.CU_EVENT_DEFAULT);
    }

    public static GpuBench open() {
        String why = CudaDevice.unavailableReason();
        if (why != null) throw new NshapException("--backend cuda: " + why);
        return new GpuBench(CudaDevice.get());
    }

    /** GPU name, compute capability, memory and driver version for the report's machine section. */
    public Map<String, Object> describe() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("name", dev.describe());
        int[] v = new int[1];
        cuDriverGetVersion(v);
        m.put("driver_cuda_version", (v[0] / 1000) + "." + (v[0] % 1000) / 10);
        m.put("memory_mib", dev.memInfo()[1] >> 20);
        String smi = nvidiaSmiDriver();
        if (smi != null) m.put("driver", smi);
        return m;
    }

    /** The kernel-mode driver version as nvidia-smi reports it, where the tool exists. */
    static String nvidiaSmiDriver() {
        try {
            Process p = new ProcessBuilder("nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader")
                    .redirectErrorStream(true).start();
            String s = new String(p.getInputStream().readAllBytes()).strip();
            return p.waitFor() == 0 && !s.isEmpty() ? s.lines().findFirst().orElse(null) : null;
        } catch (Exception e) {
            return null;
        }
    }

    /** Device time of {@code body}, measured with events around it on the null stream. */
    public Stats time(int warmup, int reps, Stats.Body body) {
        try {
            dev.makeCurrent();
            for (int i = 0; i < warmup; i++) body.run();
            cuCtxSynchronize();
            double[] t = new double[reps];
            float[] ms = new float[1];
            for (int i = 0; i < reps; i++) {
                cuEventRecord(start, null);
                body.run();
                cuEventRecord(stop, null);
                cuEventSynchronize(stop);
                cuEventElapsedTime(ms, start, stop);
                t[i] = ms[0] / 1e3;
            }
            return Stats.of(t);
        } catch (RuntimeException e) {
            throw e;
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    /** Device-to-device copy of {@code mib} MiB: bytes read + written per second (GB/s). */
    public Result copyBandwidth(int mib, int warmup, int reps) {
        long bytes = (long) mib << 20;
        CUdeviceptr a = dev.alloc(bytes), b = dev.alloc(bytes);
        try {
            cuMemsetD32(a, 0x3f800000, bytes / 4);
            Stats s = time(warmup, reps, () -> cuMemcpyDtoD(b, a, bytes));
            return new Result(s, 2.0 * bytes / s.median() / 1e9);
        } finally {
            dev.free(a);
            dev.free(b);
        }
    }

    public record Result(Stats time, double rate) {}

    /** Device buffers of one GEMM out[M,N] = A[M,K] B: A and B random, fp32 or bf16, B as [K,N] (fp32) or [N,K] (bf16). */
    public final class GemmBuffers implements AutoCloseable {
        public final int m, n, k;
        public final boolean bf16;
        final CUdeviceptr a, b, out;

        GemmBuffers(boolean bf16, int m, int n, int k, long seed) {
            this.bf16 = bf16;
            this.m = m;
            this.n = n;
            this.k = k;
            SplittableRandom r = new SplittableRandom(seed);
            float[] ha = new float[m * k], hb = new float[k * n];
            for (int i = 0; i < ha.length; i++) ha[i] = (float) (r.nextDouble() - 0.5);
            for (int i = 0; i < hb.length; i++) hb[i] = (float) (r.nextDouble() - 0.5) * 0.05f;
            if (bf16) {
                a = dev.upload(CudaKernels.toBf16(ha));
                b = dev.upload(CudaKernels.transposeBf16(hb, k, n));
            } else {
                a = dev.upload(ha);
                b = dev.upload(hb);
            }
            out = dev.alloc(4L * m * n);
        }

        public void own() {
            kernels.gemm(bf16 ? CudaKernels.GemmKind.BF16_TC : CudaKernels.GemmKind.F32_NN, out, a, b, null, m, n, k, false);
        }

        /** The same product through cuBLAS: fp32 SGEMM, or bf16 inputs with fp32 output and fp32 accumulation on tensor cores. */
        public void cublas() {
            cublasHandle h = cublasHandle();
            Pointer one = Pointer.to(new float[]{1f}), zero = Pointer.to(new float[]{0f});
            // cuBLAS is column-major: row-major out[M,N] = A B is out^T = B^T A^T.
            if (bf16) {
                JCublas2.cublasGemmEx(h, cublasOperation.CUBLAS_OP_T, cublasOperation.CUBLAS_OP_N, n, m, k, one,
                        b, cudaDataType.CUDA_R_16BF, k, a, cudaDataType.CUDA_R_16BF, k, zero,
                        out, cudaDataType.CUDA_R_32F, n, cublasComputeType.CUBLAS_COMPUTE_32F, cublasGemmAlgo.CUBLAS_GEMM_DEFAULT);
            } else {
                JCublas2.cublasSgemm(h, cublasOperation.CUBLAS_OP_N, cublasOperation.CUBLAS_OP_N, n, m, k, one, b, n, a, k, zero, out, n);
            }
        }

        public double flop() { return 2.0 * m * n * k; }

        @Override public void close() {
            dev.free(a);
            dev.free(b);
            dev.free(out);
        }
    }

    public GemmBuffers gemm(boolean bf16, int m, int n, int k, long seed) { return new GemmBuffers(bf16, m, n, k, seed); }

    synchronized cublasHandle cublasHandle() {
        if (cublas == null) {
            try {
                JCublas2.setExceptionsEnabled(true);
                cublasHandle h = new cublasHandle();
                JCublas2.cublasCreate(h);
                cublas = h;
            } catch (LinkageError | RuntimeException e) {
                throw new NshapException("cuBLAS is not usable here: " + oneLine(e.getMessage()));
            }
        }
        return cublas;
    }

    /** Null when cuBLAS works here, else why not in one line (JCublas 12.x needs libcublas.so.12). */
    public String cublasUnavailable() {
        try {
            cublasHandle();
            return null;
        } catch (NshapException e) {
            return e.getMessage();
        }
    }

    /**
     * Best GEMM rate of this precision: own kernel and cuBLAS on large square-ish shapes; the highest median wins.
     * Where cuBLAS does not load, the own kernel's best is the peak and the note says why.
     */
    public Peak gemmPeak(boolean bf16, int warmup, int reps) {
        int[][] shapes = {{4096, 4096, 4096}, {8192, 3072, 768}, {8192, 768, 3072}};
        String why = cublasUnavailable();
        String note = why == null ? "" : " (cuBLAS not compared: " + why + ")";
        Peak best = null;
        for (int[] s : shapes) {
            try (GemmBuffers g = gemm(bf16, s[0], s[1], s[2], 7)) {
                Stats own = time(warmup, reps, g::own);
                double fo = g.flop() / own.median() / 1e9, fc = -1;
                if (why == null) fc = g.flop() / time(warmup, reps, g::cublas).median() / 1e9;
                Peak p = fo >= fc ? new Peak(fo, "own", s, note) : new Peak(fc, "cuBLAS", s, note);
                if (best == null || p.gflops > best.gflops) best = p;
            }
        }
        return best;
    }

    public record Peak(double gflops, String by, int[] mnk, String note) {
        public String describe() { return by + " at M=" + mnk[0] + " N=" + mnk[1] + " K=" + mnk[2] + note; }
    }

    static String oneLine(String s) {
        if (s == null) return "no detail";
        int nl = s.indexOf('\n');
        return (nl >= 0 ? s.substring(0, nl) : s).strip();
    }

    @Override public void close() {
        if (cublas != null) JCublas2.cublasDestroy(cublas);
        cuEventDestroy(start);
        cuEventDestroy(stop);
    }
}
