package dev.nshap.bench.jmh;

import dev.nshap.backend.cpu.CpuKernels;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

/** The weight GEMMs of GPT-2 small at 512 tokens (M x K x N); GFLOP/s = 2 M K N / time. */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector"})
public class MatmulBench {
    /** c_attn, attn c_proj, c_fc, mlp c_proj. */
    @Param({"512x768x2304", "512x768x768", "512x768x3072", "512x3072x768"})
    public String shape;

    int m, k, n;
    float[] x, w, b, out;

    @Setup public void setup() {
        String[] s = shape.split("x");
        m = Integer.parseInt(s[0]);
        k = Integer.parseInt(s[1]);
        n = Integer.parseInt(s[2]);
        SplittableRandom r = new SplittableRandom(1);
        x = Fill.random(m * k, r);
        w = Fill.random(k * n, r);
        b = Fill.random(n, r);
        out = new float[m * n];
    }

    @Benchmark public float[] matmul() {
        CpuKernels.matmul(out, x, w, b, m, k, n);
        return out;
    }
}
