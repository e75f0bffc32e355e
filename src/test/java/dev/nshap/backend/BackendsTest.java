package dev.nshap.backend;

import dev.nshap.NshapException;
import dev.nshap.backend.cuda.CudaDevice;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.GPT2Weights;
import dev.nshap.testutil.TestModels;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;

import static org.junit.jupiter.api.Assertions.*;

class BackendsTest {
    final GPT2Weights w = TestModels.random(new GPT2Config(1, 2, 32, 16, 50, 1e-5, "gelu_new"), 1, 0.1f);

    @Test void autoFallsBackToCpuSilentlyOrUsesTheGpu() {
        ByteArrayOutputStream notes = new ByteArrayOutputStream();
        try (Backend b = Backends.open("auto", w, "fp32", new PrintStream(notes, true))) {
            String why = CudaDevice.unavailableReason();
            if (why == null) {
                assertEquals("cuda", b.name());
                assertEquals("", notes.toString());
            } else {
                assertEquals("cpu", b.name());
                // the header names the backend; no CUDA note on every run (a GEMM fallback note may remain)
                assertFalse(notes.toString().contains("CUDA"), notes.toString());
            }
        }
    }

    @Test void cudaWithoutAGpuIsAnInputErrorNamingTheReason() {
        String why = CudaDevice.unavailableReason();
        if (why == null) {
            try (Backend b = Backends.open("cuda", w, "bf16")) { assertEquals("cuda", b.name()); }
            return;
        }
        NshapException e = assertThrows(NshapException.class, () -> Backends.open("cuda", w, "fp32"));
        assertTrue(e.getMessage().contains(why));
        assertFalse(why.contains("\n"));
    }

    @Test void unknownNamesAreRejected() {
        assertThrows(NshapException.class, () -> Backends.open("tpu", w, "fp32"));
        assertThrows(NshapException.class, () -> Backends.open("cpu", w, "fp16"));
        assertThrows(NshapException.class, () -> Backends.open("cpu", w, "bf16"));
        try (Backend b = Backends.open("cpu", w, "fp32")) { assertEquals("cpu", b.name()); }
    }
}
