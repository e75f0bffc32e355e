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

/** LayerNorm over N rows of C = 768 (one GPT-2 small ln_1 at N tokens), single thread. */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector"})
public class LayerNormBench {
    static final int C = 768;

    @Param({"512", "2048"})
    public int n;

    float[] x, g, b, out;

    @Setup public void setup() {
        SplittableRandom r = new SplittableRandom(3);
        x = Fill.random(n * C, r);
        g = Fill.random(C, r);
        b = Fill.random(C, r);
        out = new float[n * C];
    }

    @Benchmark public float[] layerNorm() {
        CpuKernels.layerNorm(out, x, g, b, n, C, 1e-5);
        return out;
    }
}
