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

/** One causal attention head of GPT-2 small (C = 768, 12 heads) over one sequence of T tokens, single thread. */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector"})
public class AttentionBench {
    static final int C = 768, HEADS = 12;

    @Param({"32", "64", "256"})
    public int t;

    float[] qkv, out, scratch;

    @Setup public void setup() {
        qkv = Fill.random(t * 3 * C, new SplittableRandom(2));
        out = new float[t * C];
        scratch = new float[t];
    }

    @Benchmark public float[] head() {
        CpuKernels.attentionHead(out, qkv, 0, t, C, HEADS, 0, scratch);
        return out;
    }
}
