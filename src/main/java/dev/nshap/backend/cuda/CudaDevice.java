package dev.nshap.backend.cuda;

import dev.nshap.NshapException;
import jcuda.Pointer;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdevice_attribute;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUfunction;
import jcuda.driver.CUfunction_attribute;
import jcuda.driver.CUmodule;
import jcuda.driver.CUstream;
import jcuda.driver.CUstream_flags;
import jcuda.driver.JCudaDriver;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.HashMap;
import java.util.Map;

import static jcuda.driver.JCudaDriver.*;

/**
 * GPU 0 through the JCuda driver API: its primary context, the nshap fatbin (resource {@code /cuda/nshap.fatbin})
 * and typed helpers for memory and launches. {@link #unavailableReason()} probes once and says in one line why
 * the CUDA backend cannot run here (no kernels in the build, no driver, no device), or null.
 */
public class CudaDevice {
    public static final String FATBIN = "/cuda/nshap.fatbin";
    /** The null device pointer, for optional kernel arguments. */
    public static final CUdeviceptr NULL = new CUdeviceptr();

    private static boolean probed;
    private static String reason;
    private static CudaDevice instance;

    private final CUdevice device;
    private final CUcontext context;
    private final CUmodule module;
    /** Every launch and async copy goes to this one stream, so they run in issue order behind the host. */
    private final CUstream stream;
    private final Map<String, CUfunction> functions = new HashMap<>();
    private final Map<String, Integer> smemSet = new HashMap<>();
    public final String name;
    public final int ccMajor, ccMinor, smCount, maxSmemOptin;

    /**
     * For a stand-in device without a driver (the tests' host emulation, which overrides memory, launches and
     * synchronisation).
     */
    protected CudaDevice(String name, int maxSmemOptin) {
        this.device = null;
        this.context = null;
        this.module = null;
        this.stream = null;
        this.name = name;
        this.ccMajor = 9;
        this.ccMinor = 0;
        this.smCount = 1;
        this.maxSmemOptin = maxSmemOptin;
    }

    private CudaDevice(CUdevice device, CUcontext context, CUmodule module) {
        this.device = device;
        this.context = context;
        this.module = module;
        this.stream = new CUstream();
        cuStreamCreate(stream, CUstream_flags.CU_STREAM_DEFAULT);
        byte[] nameBytes = new byte[256];
        cuDeviceGetName(nameBytes, nameBytes.length, device);
        int len = 0;
        while (len < nameBytes.length && nameBytes[len] != 0) len++;
        name = new String(nameBytes, 0, len);
        ccMajor = attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
        ccMinor = attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
        smCount = attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
        maxSmemOptin = attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN);
    }

    private int attribute(int a) {
        int[] v = new int[1];
        cuDeviceGetAttribute(v, a, device);
        return v[0];
    }

    /** Null when the CUDA backend can run here; otherwise one line saying why not. */
    public static synchronized String unavailableReason() {
        probe();
        return reason;
    }

    /** The device, or an {@link NshapException} (exit code 2) with the reason it is unavailable. */
    public static synchronized CudaDevice get() {
        probe();
        if (reason != null) throw new NshapException("CUDA backend unavailable: " + reason);
        instance.makeCurrent();
        return instance;
    }

    private static void probe() {
        if (probed) return;
        probed = true;
        byte[] fatbin;
        try (InputStream in = CudaDevice.class.getResourceAsStream(FATBIN)) {
            if (in == null) {
                reason = "this build has no CUDA kernels (" + FATBIN + " is missing: nvcc was not found when nshap was built)";
                return;
            }
            fatbin = in.readAllBytes();
        } catch (IOException e) {
            reason = "cannot read " + FATBIN + ": " + e.getMessage();
            return;
        }
        try {
            JCudaDriver.setExceptionsEnabled(true);
            cuInit(0);
            int[] count = new int[1];
            cuDeviceGetCount(count);
            if (count[0] == 0) {
                reason = "no CUDA device found";
                return;
            }
            CUdevice dev = new CUdevice();
            cuDeviceGet(dev, 0);
            CUcontext ctx = new CUcontext();
            cuDevicePrimaryCtxRetain(ctx, dev);
            cuCtxSetCurrent(ctx);
            CUmodule module = new CUmodule();
            cuModuleLoadData(module, fatbin);
            instance = new CudaDevice(dev, ctx, module);
            if (instance.ccMajor < 8) {
                reason = "GPU " + instance.name + " has compute capability " + instance.ccMajor + "." + instance.ccMinor
                        + "; the nshap kernels need 8.0 or newer";
                instance = null;
            }
        } catch (LinkageError e) {
            String msg = oneLine(e.getMessage());
            // The linker's message is long; the missing libcuda is the usual case and deserves a short line.
            reason = msg != null && msg.contains("libcuda.so") ? "no NVIDIA driver here (libcuda.so.1 not found)"
                    : "the CUDA driver library did not load (" + msg + ")";
        } catch (RuntimeException e) {
            reason = "CUDA initialisation failed: " + oneLine(e.getMessage());
        }
    }

    static String oneLine(String s) {
        if (s == null) return "no detail";
        s = s.strip();
        // JCuda lists what it tried line by line; the useful line names the missing driver library
        for (String line : s.split("\n"))
            if (line.contains("libcuda") || line.contains("cannot open shared object")) {
                String first = s.lines().findFirst().orElse("").strip();
                s = first + ": " + line.strip();
                break;
            }
        int nl = s.indexOf('\n');
        if (nl >= 0) s = s.substring(0, nl).strip();
        return s.length() > 300 ? s.substring(0, 300) + "..." : s;
    }

    /** The primary context is current per thread: every entry point calls this first. */
    public void makeCurrent() { cuCtxSetCurrent(context); }

    public String describe() { return name + " (sm_" + ccMajor + ccMinor + ", " + smCount + " SMs)"; }

    /** Free and total device memory in bytes. */
    public long[] memInfo() {
        long[] free = new long[1], total = new long[1];
        cuMemGetInfo(free, total);
        return new long[]{free[0], total[0]};
    }

    public synchronized CUfunction function(String kernel) {
        return functions.computeIfAbsent(kernel, k -> {
            CUfunction f = new CUfunction();
            cuModuleGetFunction(f, module, k);
            return f;
        });
    }

    // ------------------------------------------------------------------ memory

    public CUdeviceptr alloc(long bytes) {
        CUdeviceptr p = new CUdeviceptr();
        cuMemAlloc(p, Math.max(bytes, 16));
        return p;
    }

    public void free(CUdeviceptr p) {
        if (p != null && p != NULL) cuMemFree(p);
    }

    public final CUdeviceptr upload(float[] a) {
        CUdeviceptr p = alloc(4L * a.length);
        copyIn(p, a, a.length);
        return p;
    }

    public final CUdeviceptr upload(int[] a) {
        CUdeviceptr p = alloc(4L * a.length);
        copyIn(p, a, a.length);
        return p;
    }

    public final CUdeviceptr upload(short[] a) {
        CUdeviceptr p = alloc(2L * a.length);
        copyIn(p, a, a.length);
        return p;
    }

    public void copyIn(CUdeviceptr dst, float[] a, int n) { if (n > 0) cuMemcpyHtoD(dst, Pointer.to(a), 4L * n); }

    public void copyIn(CUdeviceptr dst, short[] a, int n) { if (n > 0) cuMemcpyHtoD(dst, Pointer.to(a), 2L * n); }

    public void copyIn(CUdeviceptr dst, int[] a, int n) { if (n > 0) cuMemcpyHtoD(dst, Pointer.to(a), 4L * n); }

    public void copyOut(float[] dst, CUdeviceptr src, int n) { if (n > 0) cuMemcpyDtoH(Pointer.to(dst), src, 4L * n); }

    public void copyOut(int[] dst, CUdeviceptr src, int n) { if (n > 0) cuMemcpyDtoH(Pointer.to(dst), src, 4L * n); }

    public void copyOut(short[] dst, CUdeviceptr src, int n) { if (n > 0) cuMemcpyDtoH(Pointer.to(dst), src, 2L * n); }

    public final float[] download(CUdeviceptr src, int n) {
        float[] a = new float[n];
        copyOut(a, src, n);
        return a;
    }

    public final int[] downloadInts(CUdeviceptr src, int n) {
        int[] a = new int[n];
        copyOut(a, src, n);
        return a;
    }

    /** Waits for everything issued to the stream (and the rest of the context). */
    public void synchronize() { cuCtxSynchronize(); }

    /** A view of a device buffer from byteOffset on (not to be freed on its own). */
    public CUdeviceptr slice(CUdeviceptr base, long byteOffset) { return base.withByteOffset(byteOffset); }

    /** Page-locked host memory: the source and target of the async copies. */
    public static final class Pinned {
        public final Pointer ptr;
        public final ByteBuffer buf;
        public final long bytes;

        Pinned(Pointer ptr, ByteBuffer buf, long bytes) {
            this.ptr = ptr;
            this.buf = buf.order(ByteOrder.LITTLE_ENDIAN);
            this.bytes = bytes;
        }
    }

    public Pinned allocPinned(long bytes) {
        bytes = Math.max(bytes, 16);
        Pointer p = new Pointer();
        cuMemAllocHost(p, bytes);
        return new Pinned(p, p.getByteBuffer(0, bytes), bytes);
    }

    public void freePinned(Pinned p) { if (p != null) cuMemFreeHost(p.ptr); }

    /** bytes from pinned host memory at srcOff to dst, queued on the stream (the host buffer must stay put until a sync). */
    public void copyInAsync(CUdeviceptr dst, Pinned src, long srcOff, long bytes) {
        if (bytes > 0) cuMemcpyHtoDAsync(dst, src.ptr.withByteOffset(srcOff), bytes, stream);
    }

    /** bytes from src into pinned host memory at dstOff, queued on the stream; valid after {@link #synchronize()}. */
    public void copyOutAsync(Pinned dst, long dstOff, CUdeviceptr src, long bytes) {
        if (bytes > 0) cuMemcpyDtoHAsync(dst.ptr.withByteOffset(dstOff), src, bytes, stream);
    }

    public void zero(CUdeviceptr p, long bytes) { cuMemsetD8(p, (byte) 0, bytes); }

    // ------------------------------------------------------------------ launches

    /**
     * Launches a kernel on the stream, after checking the arguments against the kernel's parameter list in
     * {@link KernelSignatures} (the stand-in device runs the same check). Arguments: {@link CUdeviceptr} (null =
     * NULL), Integer, Float, Long (a 64-bit value on the device).
     */
    public final void launch(String kernel, int gx, int gy, int gz, int block, int smem, Object... args) {
        KernelSignatures.check(kernel, args);
        if (recording != null) recording.add(new Launch(kernel, gx, gy, gz, block, smem, args));
        else issue(kernel, gx, gy, gz, block, smem, args);
    }

    // ------------------------------------------------------------------ events

    public Object createEvent() {
        jcuda.driver.CUevent e = new jcuda.driver.CUevent();
        cuEventCreate(e, jcuda.driver.CUevent_flags.CU_EVENT_DEFAULT);
        return e;
    }

    public void recordEvent(Object e) { cuEventRecord((jcuda.driver.CUevent) e, stream); }

    /** Milliseconds between two recorded events (both complete: call after a sync). */
    public double elapsedMs(Object a, Object b) {
        float[] ms = new float[1];
        cuEventElapsedTime(ms, (jcuda.driver.CUevent) a, (jcuda.driver.CUevent) b);
        return ms[0];
    }

    public void destroyEvent(Object e) { cuEventDestroy((jcuda.driver.CUevent) e); }

    // ------------------------------------------------------------------ CUDA graphs

    /** One recorded launch. */
    protected record Launch(String kernel, int gx, int gy, int gz, int block, int smem, Object[] args) {}

    private java.util.List<Launch> recording;
    private java.util.List<Object> graphKey;
    private Object graph;
    /** Graphs captured and replayed so far (the perf report and the tests read them). */
    public int graphCaptures, graphReplays;

    /**
     * From here to {@link #endRecording()}, launches are recorded instead of issued. Only launches may happen in
     * between: no copies, no host reads, no library calls that use a stream of their own.
     */
    public void beginRecording() { recording = new java.util.ArrayList<>(); }

    /**
     * Issues the recorded launches as one CUDA graph: the previous graph is replayed when the sequence is the same
     * (same kernels, grids and arguments, pointers compared by address), else a new one is captured and launched.
     */
    public void endRecording() {
        java.util.List<Launch> seq = recording;
        recording = null;
        java.util.List<Object> key = new java.util.ArrayList<>(seq.size() * 12);
        for (Launch l : seq) {
            key.add(l.kernel); key.add(l.gx); key.add(l.gy); key.add(l.gz); key.add(l.block); key.add(l.smem);
            for (Object a : l.args) key.add(a instanceof CUdeviceptr d ? (Object) ("@" + address(d)) : a == null ? "@0" : a);
        }
        if (graph == null || !key.equals(graphKey)) {
            if (graph != null) destroyGraph(graph);
            graph = null;
            graph = captureGraph(seq);
            graphKey = key;
            graphCaptures++;
        } else graphReplays++;
        launchGraph(graph);
    }

    /** A device address, byte offset included (CUdeviceptr.equals ignores the offset; its toString has both). */
    protected long address(CUdeviceptr p) {
        String s = p.toString(); // CUdeviceptr[nativePointer=0x...,byteOffset=N]
        int a = s.indexOf("nativePointer=0x"), b = s.indexOf(",byteOffset=");
        long base = Long.parseUnsignedLong(s.substring(a + 16, b), 16);
        return base + Long.parseLong(s.substring(b + 12, s.indexOf(']', b)));
    }

    protected Object captureGraph(java.util.List<Launch> seq) {
        cuStreamBeginCapture(stream, jcuda.driver.CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_THREAD_LOCAL);
        jcuda.driver.CUgraph g = new jcuda.driver.CUgraph();
        try {
            for (Launch l : seq) issue(l.kernel, l.gx, l.gy, l.gz, l.block, l.smem, l.args);
        } finally {
            cuStreamEndCapture(stream, g);
        }
        jcuda.driver.CUgraphExec exec = new jcuda.driver.CUgraphExec();
        cuGraphInstantiate(exec, g, 0);
        cuGraphDestroy(g);
        return exec;
    }

    protected void launchGraph(Object g) { cuGraphLaunch((jcuda.driver.CUgraphExec) g, stream); }

    protected void destroyGraph(Object g) { cuGraphExecDestroy((jcuda.driver.CUgraphExec) g); }

    /** Drops the cached graph (its buffers are about to be freed). */
    public void forgetGraph() {
        if (graph != null) destroyGraph(graph);
        graph = null;
        graphKey = null;
    }

    protected void issue(String kernel, int gx, int gy, int gz, int block, int smem, Object... args) {
        CUfunction f = function(kernel);
        if (smem > 48 * 1024) {
            if (smem > maxSmemOptin)
                throw new NshapException("kernel " + kernel + " needs " + smem + " bytes of shared memory; "
                        + name + " allows " + maxSmemOptin);
            synchronized (this) {
                Integer done = smemSet.get(kernel);
                if (done == null || done < smem) {
                    cuFuncSetAttribute(f, CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem);
                    smemSet.put(kernel, smem);
                }
            }
        }
        Pointer[] ps = new Pointer[args.length];
        for (int i = 0; i < args.length; i++) {
            Object a = args[i];
            if (a == null) ps[i] = Pointer.to(NULL);
            else if (a instanceof CUdeviceptr d) ps[i] = Pointer.to(d);
            else if (a instanceof Integer v) ps[i] = Pointer.to(new int[]{v});
            else if (a instanceof Float v) ps[i] = Pointer.to(new float[]{v});
            else if (a instanceof Long v) ps[i] = Pointer.to(new long[]{v});
            else throw new IllegalArgumentException("kernel argument of type " + a.getClass());
        }
        cuLaunchKernel(f, gx, gy, gz, block, 1, 1, smem, stream, Pointer.to(ps), null);
    }
}
