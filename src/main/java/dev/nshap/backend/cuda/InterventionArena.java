package dev.nshap.backend.cuda;

import dev.nshap.backend.HookPoint;
import jcuda.driver.CUdeviceptr;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Every intervened hook's {@link InterventionTable} of one forward in one device buffer: the tables are written
 * into page-locked host memory and go up in one async copy, and the kernels read views into the buffer. Both
 * buffers only grow, so a steady stream of game calls allocates nothing.
 */
final class InterventionArena implements AutoCloseable {
    private final CudaDevice dev;
    private CUdeviceptr device;
    private CudaDevice.Pinned host;
    private long capacityInts;

    InterventionArena(CudaDevice dev) { this.dev = dev; }

    private long loadedBytes;

    /** Writes the tables into the pinned buffer and returns each hook's device view; {@link #queueCopy} uploads them. */
    Map<HookPoint, CudaKernels.Ops> load(Map<HookPoint, InterventionTable> tables) {
        Map<HookPoint, CudaKernels.Ops> out = new LinkedHashMap<>();
        loadedBytes = 0;
        if (tables.isEmpty()) return out;
        long ints = 0;
        for (InterventionTable t : tables.values()) ints += t.deviceInts();
        if (ints > capacityInts) grow(Math.max(ints, capacityInts + capacityInts / 2));
        java.nio.ByteBuffer b = host.buf;
        long at = 0;
        for (Map.Entry<HookPoint, InterventionTable> e : tables.entrySet()) {
            InterventionTable t = e.getValue();
            CUdeviceptr start = put(b, at, t.seqOpStart, null);
            at += InterventionTable.pad(t.seqOpStart.length);
            CUdeviceptr list = put(b, at, t.opList, null);
            at += InterventionTable.pad(t.opList.length);
            CUdeviceptr ops = put(b, at, t.ops, null);
            at += InterventionTable.pad(t.ops.length);
            CUdeviceptr masks = put(b, at, t.masks, null);
            at += InterventionTable.pad(t.masks.length);
            CUdeviceptr vecs = put(b, at, null, t.vecs);
            at += InterventionTable.pad(t.vecs.length);
            out.put(e.getKey(), new CudaKernels.Ops(start, list, ops, masks, vecs));
        }
        loadedBytes = 4 * at;
        return out;
    }

    /** The one async copy of everything {@link #load} wrote. */
    void queueCopy() {
        if (loadedBytes > 0) dev.copyInAsync(device, host, 0, loadedBytes);
        loadedBytes = 0;
    }

    private CUdeviceptr put(java.nio.ByteBuffer b, long at, int[] a, float[] f) {
        int o = (int) (4 * at);
        if (a != null) for (int i = 0; i < a.length; i++) b.putInt(o + 4 * i, a[i]);
        else for (int i = 0; i < f.length; i++) b.putFloat(o + 4 * i, f[i]);
        return dev.slice(device, 4 * at);
    }

    private void grow(long ints) {
        free();
        device = dev.alloc(4 * ints);
        host = dev.allocPinned(4 * ints);
        capacityInts = ints;
    }

    long capacityBytes() { return 4 * capacityInts; }

    private void free() {
        if (device != null) dev.free(device);
        if (host != null) dev.freePinned(host);
        device = null;
        host = null;
        capacityInts = 0;
    }

    @Override public void close() { free(); }
}
