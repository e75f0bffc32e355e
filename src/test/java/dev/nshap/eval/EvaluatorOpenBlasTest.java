package dev.nshap.eval;

import dev.nshap.backend.cpu.Gemm;
import org.junit.jupiter.api.BeforeEach;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** Every test of {@link EvaluatorTest} again, with the linear layers on OpenBLAS (skipped where it does not load). */
class EvaluatorOpenBlasTest extends EvaluatorTest {
    @Override Gemm.Impl gemm() { return Gemm.Impl.OPENBLAS; }

    @BeforeEach void needsOpenBlas() {
        assumeTrue(Gemm.Impl.available().contains(Gemm.Impl.OPENBLAS), "OpenBLAS not loaded: " + Gemm.openBlasError());
    }
}
