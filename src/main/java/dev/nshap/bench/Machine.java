package dev.nshap.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** What a figure was measured on: written into every benchmark JSON so a number never travels without its machine. */
public final class Machine {
    private Machine() {}

    public static Map<String, Object> describe() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("cpu_model", cpuModel());
        m.put("cores", Runtime.getRuntime().availableProcessors());
        m.put("os", System.getProperty("os.name") + " " + System.getProperty("os.version") + " " + System.getProperty("os.arch"));
        m.put("java", System.getProperty("java.vm.name") + " " + System.getProperty("java.version"));
        m.put("vector_bits", jdk.incubator.vector.FloatVector.SPECIES_PREFERRED.vectorBitSize());
        m.put("cpu_gemm", dev.nshap.backend.cpu.Gemm.describe());
        m.put("max_heap_mib", Runtime.getRuntime().maxMemory() >> 20);
        m.put("load_average", loadAverage());
        m.put("hostname", hostname());
        return m;
    }

    static String cpuModel() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
                if (line.startsWith("model name")) {
                    int c = line.indexOf(':');
                    if (c >= 0) return line.substring(c + 1).strip();
                }
            }
        } catch (IOException | RuntimeException ignored) {
            // not Linux: fall through to the JVM's view
        }
        return System.getProperty("os.arch") + " (model unknown)";
    }

    /** The 1-minute load average at the start: a benchmark on a busy machine says so. */
    static double loadAverage() {
        return java.lang.management.ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage();
    }

    static String hostname() {
        try {
            List<String> l = Files.readAllLines(Path.of("/etc/hostname"));
            return l.isEmpty() ? "" : l.get(0).strip();
        } catch (IOException | RuntimeException e) {
            return "";
        }
    }
}
