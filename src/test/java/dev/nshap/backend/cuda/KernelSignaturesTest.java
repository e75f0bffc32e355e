package dev.nshap.backend.cuda;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The launcher's kernel table against the kernels as written: parses every {@code extern "C" __global__} in the
 * files cuda/nshap.cu includes (expanding the one-parameter instantiation macros) and demands the same names and
 * parameter types as {@link KernelSignatures}.
 */
class KernelSignaturesTest {
    static final Path CUDA = Path.of("cuda");

    static Map<String, List<String>> parse() throws IOException {
        StringBuilder src = new StringBuilder();
        Matcher inc = Pattern.compile("#include \"([^\"]+)\"").matcher(Files.readString(CUDA.resolve("nshap.cu")));
        while (inc.find()) src.append(Files.readString(CUDA.resolve(inc.group(1)))).append('\n');
        String s = src.toString().replaceAll("(?s)/\\*.*?\\*/", "").replaceAll("//[^\n]*", "").replace("\\\n", " ");
        // one-parameter macros that stamp out kernels: #define NAME(P) body ... NAME(16)
        Matcher def = Pattern.compile("#define (\\w+)\\((\\w+)\\)([^\n]*)").matcher(s);
        StringBuilder expanded = new StringBuilder();
        List<String[]> macros = new ArrayList<>();
        while (def.find()) if (def.group(3).contains("__global__")) macros.add(new String[]{def.group(1), def.group(2), def.group(3)});
        String rest = s.replaceAll("#define [^\n]*", "");
        for (String[] m : macros) {
            Matcher use = Pattern.compile("\\b" + m[0] + "\\((\\w+)\\)").matcher(rest);
            while (use.find()) expanded.append(m[2].replace("##" + m[1], use.group(1)).replaceAll("\\b" + m[1] + "\\b", use.group(1))).append('\n');
        }
        String all = rest + "\n" + expanded;
        Matcher k = Pattern.compile("extern \"C\" __global__ void\\s+(?:__launch_bounds__\\([^)]*\\)\\s*)?(\\w+)\\s*\\(([^)]*)\\)").matcher(all);
        Map<String, List<String>> out = new LinkedHashMap<>();
        while (k.find()) {
            List<String> types = new ArrayList<>();
            for (String p : k.group(2).split(",")) {
                String t = p.replace("__restrict__", " ").replace("const ", " ").replace("__nv_bfloat16", "bf16").strip();
                t = t.replaceAll("\\s*\\*\\s*", "* ").replaceAll("\\s+", " ");
                // drop the parameter name: the last word
                t = t.substring(0, t.lastIndexOf(' ')).strip();
                types.add(t);
            }
            assertNull(out.put(k.group(1), types), "kernel " + k.group(1) + " defined twice");
        }
        return out;
    }

    @Test void tableMatchesTheCudaSources() throws IOException {
        Map<String, List<String>> cu = parse();
        assertTrue(cu.size() >= 20, "parsed only " + cu.keySet());
        assertTrue(cu.containsKey("attn_flash_bf16_128"), "macro instances expanded: " + cu.keySet());
        for (Map.Entry<String, List<String>> e : cu.entrySet())
            assertEquals(e.getValue(), KernelSignatures.PARAMS.get(e.getKey()),
                    "kernel " + e.getKey() + ": cuda/ declares " + e.getValue() + ", KernelSignatures " + KernelSignatures.PARAMS.get(e.getKey()));
        for (String name : KernelSignatures.PARAMS.keySet())
            assertTrue(cu.containsKey(name), "KernelSignatures lists " + name + ", which cuda/ does not define");
    }

    @Test void launchesAreCheckedAgainstTheTable() {
        HostDevice d = new HostDevice(1 << 20);
        var p = d.alloc(64);
        var e = assertThrows(IllegalArgumentException.class, () -> d.launch("gather_rows", 1, 1, 1, 32, 0, p, p, p, 4, 4L));
        assertTrue(e.getMessage().contains("argument 4") && e.getMessage().contains("int"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> d.launch("gather_rows", 1, 1, 1, 32, 0, p, p, p, 4));
        assertTrue(e.getMessage().contains("5 arguments"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> d.launch("no_such_kernel", 1, 1, 1, 32, 0));
    }
}
