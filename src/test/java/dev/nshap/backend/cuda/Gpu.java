package dev.nshap.backend.cuda;

import dev.nshap.model.SafeTensors;
import jcuda.driver.CUdeviceptr;
import org.junit.jupiter.api.Assumptions;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertTrue;

/** Test support: skips without a usable GPU, and frees what a test uploaded. */
final class Gpu implements AutoCloseable {
    final CudaDevice dev;
    final CudaKernels k;
    private final List<CUdeviceptr> owned = new ArrayList<>();

    /**
     * -Dnshap.test.emulateGpu=true runs these GPU tests on {@link HostDevice}: a check of the tests themselves
     * (references, shapes, launches) on a machine without a GPU. It proves nothing about the kernels.
     */
    static final boolean EMULATE = Boolean.getBoolean("nshap.test.emulateGpu");

    /** The device under test: the GPU, or the host emulation. */
    static CudaDevice device() { return EMULATE ? new HostDevice(16L << 30) : CudaDevice.get(); }

    static void assumeGpu() {
        if (EMULATE) return;
        String why = CudaDevice.unavailableReason();
        Assumptions.assumeTrue(why == null, () -> "no usable GPU: " + why);
    }

    static Gpu open() {
        assumeGpu();
        return new Gpu();
    }

    private Gpu() {
        dev = device();
        k = new CudaKernels(dev);
    }

    CUdeviceptr up(float[] a) { return own(dev.upload(a)); }
    CUdeviceptr up(int[] a) { return own(dev.upload(a)); }
    CUdeviceptr up(short[] a) { return own(dev.upload(a)); }
    CUdeviceptr zeros(long bytes) {
        CUdeviceptr p = own(dev.alloc(bytes));
        dev.zero(p, bytes);
        return p;
    }

    float[] down(CUdeviceptr p, int n) {
        dev.synchronize();
        return dev.download(p, n);
    }

    int[] downInts(CUdeviceptr p, int n) {
        dev.synchronize();
        return dev.downloadInts(p, n);
    }

    float[] downBf16(CUdeviceptr p, int n) {
        dev.synchronize();
        short[] h = new short[n];
        dev.copyOut(h, p, n);
        float[] f = new float[n];
        for (int i = 0; i < n; i++) f[i] = SafeTensors.bf16ToFloat(h[i]);
        return f;
    }

    private CUdeviceptr own(CUdeviceptr p) {
        owned.add(p);
        return p;
    }

    @Override public void close() {
        for (CUdeviceptr p : owned) dev.free(p);
    }

    /** |a - b| <= abs + rel |b| everywhere, reporting the worst index. */
    static void assertClose(double[] want, float[] got, double abs, double rel, String what) {
        assertTrue(want.length == got.length, what + ": length " + got.length + " != " + want.length);
        double worst = 0;
        int at = -1;
        for (int i = 0; i < want.length; i++) {
            double err = Math.abs(got[i] - want[i]) - (abs + rel * Math.abs(want[i]));
            if (Double.isNaN(got[i]) || err > worst) { worst = Double.isNaN(got[i]) ? Double.POSITIVE_INFINITY : err; at = i; }
        }
        int i = at;
        assertTrue(at < 0, () -> what + ": element " + i + " is " + got[i] + ", expected " + want[i]);
    }

    static float[] gaussian(java.util.Random r, int n, double std) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) (r.nextGaussian() * std);
        return a;
    }
}
