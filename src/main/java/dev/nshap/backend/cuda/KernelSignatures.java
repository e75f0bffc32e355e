package dev.nshap.backend.cuda;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The parameter lists of every kernel in cuda/nshap.cu, in the kernels' own C types (const, __restrict__ dropped,
 * __nv_bfloat16 written bf16). {@link CudaDevice#launch} checks every launch against this table, on the GPU and on
 * the tests' stand-in device alike, and a test parses the .cu sources and demands the same table: a kernel whose
 * signature changes without the Java side following fails here, not as a crash or silent garbage on a GPU.
 */
public final class KernelSignatures {
    private KernelSignatures() {}

    /** Attention head dims with their own kernel instances (ATTN_KERNELS in attention.cuh). */
    static final int[] HEAD_DIMS = {16, 32, 64, 128};

    public static final Map<String, List<String>> PARAMS = table();

    private static Map<String, List<String>> table() {
        Map<String, List<String>> m = new LinkedHashMap<>();
        String ops = "int*,int*,int*,int*,int*,unsigned*,float*"; // rowSeq rowPos seqOpStart opList ops masks vecs
        m.put("embedding", l("float*,int*,int*,float*,float*,int,int"));
        m.put("layernorm_f32", l("float*,float*,int*,float*,float*,int,int,float"));
        m.put("layernorm_bf16", l("bf16*,float*,int*,float*,float*,int,int,float"));
        m.put("gemm_bf16_tc", l("float*,bf16*,bf16*,float*,int,int,int,int"));
        m.put("gemm_bf16_tc_summary", l("bf16*,bf16*,int,int,int,int*,float*,float*,float*,int*"));
        m.put("gemm_f32_nn", l("float*,float*,float*,float*,int,int,int,int"));
        m.put("gemm_f32_nt", l("float*,float*,float*,float*,int,int,int,int"));
        m.put("gemm_f32_nt_summary", l("float*,float*,int,int,int,int*,float*,float*,float*,int*"));
        for (int hd : HEAD_DIMS)
            for (String t : new String[]{"f32", "bf16"}) {
                String z = t.equals("f32") ? "float*" : "bf16*";
                m.put("attn_short_" + t + "_" + hd, l(z + ",float*,int*,int*,int"));
                m.put("attn_flash_" + t + "_" + hd, l(z + ",float*,int*,int*,int"));
            }
        m.put("gelu_intervene_f32", l("float*,float*,float*,int,int," + ops));
        m.put("gelu_intervene_bf16", l("bf16*,float*,float*,int,int," + ops));
        m.put("intervene_f32", l("float*,int," + ops));
        m.put("residual_add", l("float*,float*,long long"));
        m.put("bias_add", l("float*,float*,int,int"));
        m.put("gather_rows", l("float*,float*,int*,int,int"));
        m.put("logsoftmax_summary", l("float*,int*,float*,int*,float*,int,int"));
        m.put("lse_combine", l("float*,float*,int*,int,float*,int*,float*,int*,float*,int"));
        m.put("rng_gaussian", l("float*,int*,int*,int,unsigned long long"));
        return m;
    }

    private static List<String> l(String csv) { return List.of(csv.split(",")); }

    /** Throws IllegalArgumentException naming the kernel and parameter when args do not fit the kernel's C parameters. */
    public static void check(String kernel, Object[] args) {
        List<String> p = PARAMS.get(kernel);
        if (p == null) throw new IllegalArgumentException("no kernel " + kernel + " in cuda/nshap.cu");
        if (p.size() != args.length)
            throw new IllegalArgumentException(kernel + " takes " + p.size() + " arguments " + p + ", launched with " + args.length);
        for (int i = 0; i < args.length; i++) {
            String t = p.get(i);
            Object a = args[i];
            boolean ok = t.endsWith("*") ? a == null || a instanceof jcuda.driver.CUdeviceptr
                    : switch (t) {
                        case "int", "unsigned" -> a instanceof Integer;
                        case "float" -> a instanceof Float;
                        case "long long", "unsigned long long" -> a instanceof Long;
                        default -> false;
                    };
            if (!ok)
                throw new IllegalArgumentException(kernel + ": argument " + i + " is " + (a == null ? "null" : a.getClass().getSimpleName())
                        + ", the kernel's parameter is " + t);
        }
    }
}
