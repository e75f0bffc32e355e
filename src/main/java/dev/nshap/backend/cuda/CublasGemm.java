package dev.nshap.backend.cuda;

import dev.nshap.NshapException;
import jcuda.Pointer;
import jcuda.cudaDataType;
import jcuda.driver.CUdeviceptr;
import jcuda.jcublas.JCublas2;
import jcuda.jcublas.cublasComputeType;
import jcuda.jcublas.cublasGemmAlgo;
import jcuda.jcublas.cublasHandle;
import jcuda.jcublas.cublasOperation;

/**
 * The weight GEMMs through cuBLAS instead of the own kernels (opt in: {@code -Dnshap.gemm=cublas}), for
 * comparison. cuBLAS is column-major, so the row-major C[M,N] = A[M,K] B is computed as C^T = B^T A^T.
 */
final class CublasGemm implements AutoCloseable {
    private final cublasHandle handle = new cublasHandle();
    private final CudaKernels k;
    private static final Pointer ONE = Pointer.to(new float[]{1f}), ZERO = Pointer.to(new float[]{0f});

    CublasGemm(CudaKernels k) {
        this.k = k;
        try {
            JCublas2.setExceptionsEnabled(true);
            JCublas2.cublasCreate(handle);
        } catch (LinkageError | RuntimeException e) {
            throw new NshapException("cuBLAS is not usable here (libcublas.so.12 did not load: "
                    + CudaDevice.oneLine(e.getMessage()) + ")");
        }
    }

    /** Like {@link CudaKernels#gemm}: bf16 = B is bf16 [N,K] and A bf16; otherwise fp32 B [K,N] (nt: [N,K]). */
    void gemm(boolean bf16, boolean bNK, CUdeviceptr out, CUdeviceptr a, CUdeviceptr b, CUdeviceptr bias,
              int M, int N, int K, boolean accumulate) {
        if (M == 0) return;
        int opB = bNK ? cublasOperation.CUBLAS_OP_T : cublasOperation.CUBLAS_OP_N;
        int ldb = bNK ? K : N;
        Pointer beta = accumulate ? ONE : ZERO;
        if (bf16) {
            JCublas2.cublasGemmEx(handle, opB, cublasOperation.CUBLAS_OP_N, N, M, K, ONE,
                    b, cudaDataType.CUDA_R_16BF, ldb, a, cudaDataType.CUDA_R_16BF, K, beta,
                    out, cudaDataType.CUDA_R_32F, N, cublasComputeType.CUBLAS_COMPUTE_32F, cublasGemmAlgo.CUBLAS_GEMM_DEFAULT);
        } else {
            JCublas2.cublasSgemm(handle, opB, cublasOperation.CUBLAS_OP_N, N, M, K, ONE, b, ldb, a, K, beta, out, N);
        }
        if (bias != null) k.biasAdd(out, bias, M, N);
    }

    @Override public void close() { JCublas2.cublasDestroy(handle); }
}
