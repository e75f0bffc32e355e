package dev.nshap.backend.cuda;

import dev.nshap.NshapException;
import dev.nshap.backend.ForwardRequest;
import dev.nshap.backend.ForwardResult;
import dev.nshap.backend.HookPoint;
import dev.nshap.backend.HookPoint.Kind;
import dev.nshap.backend.Intervention;
import dev.nshap.backend.cpu.CpuBackend;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.GPT2Weights;
import dev.nshap.testutil.TestModels;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Random;

import static dev.nshap.backend.cuda.CudaForwardTest.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The CUDA backend's host side on {@link HostDevice} (no GPU needed), against the CPU backend: packing, the
 * per-sequence intervention tables, the shared-prefix broadcast, hook copies, start layer, chunking and scoring.
 */
class CudaBackendEmulatedTest {
    static final GPT2Config CFG = new GPT2Config(3, 2, 32, 100, 301, 1e-5, "gelu_new"); // head dim 16
    static final GPT2Weights W = TestModels.random(CFG, 31, 0.2f);
    static final long MEM = 256L << 20;

    static CudaBackend open(String precision, HostDevice d) { return new CudaBackend(W, precision, false, d); }

    @Test void plainBatchShortAndLongSequencesWithCaches() {
        Random r = new Random(1);
        ForwardRequest q = plain(r, CFG.vocabSize(), new int[]{1, 9, 64, 65, 100, 31});
        cacheAllHooks(q, 1);
        ForwardResult want = new CpuBackend(W).forward(q);
        HostDevice d = new HostDevice(MEM);
        try (CudaBackend b = open("fp32", d)) {
            compare(want, b.forward(q), FP32_LP, 2e-4, "emulated fp32");
        }
        assertEquals(0, d.allocated(), "close frees every buffer");
    }

    @Test void coalitionBatchAtEveryHookFp32AndBf16() {
        Random r = new Random(2);
        ForwardRequest q = coalitions(r, CFG, 3, 7, 12, 0, true);
        cacheAllHooks(q, CFG.nLayer() - 1);
        q.cache.add(HookPoint.mlpPost(0));
        ForwardResult want = new CpuBackend(W).forward(q);
        try (CudaBackend b = open("fp32", new HostDevice(MEM))) {
            compare(want, b.forward(q), FP32_LP, 2e-4, "emulated coalitions fp32");
        }
        GPT2Weights hf = dev.nshap.model.ModelInit.random(CFG, 32); // see CudaForwardTest on bf16 and hot weights
        try (CudaBackend b = new CudaBackend(hf, "bf16", false, new HostDevice(MEM))) {
            compare(new CpuBackend(hf).forward(q), b.forward(q), BF16_LP, 0.05, "emulated coalitions bf16");
        }
    }

    @Test void sharedPrefixRunsOncePerDistinctPromptAndIsBroadcast() {
        Random r = new Random(3);
        int prompts = 2, coalitions = 5, T = 10;
        ForwardRequest q = coalitions(r, CFG, prompts, coalitions, T, 2, false);
        q.cache.add(new HookPoint(0, Kind.MLP_POST));
        q.cache.add(new HookPoint(1, Kind.RESID_POST));
        q.cache.add(new HookPoint(2, Kind.RESID_PRE));
        ForwardResult want = new CpuBackend(W).forward(q);
        HostDevice shared = new HostDevice(MEM);
        try (CudaBackend b = open("fp32", shared)) {
            compare(want, b.forward(q), FP32_LP, 2e-4, "broadcast prefix");
        }
        // layers 0 and 1 ran on the distinct prompts only: embedded once each, broadcast by one gather
        assertEquals((long) prompts * T, shared.embeddedRows, "rows embedded with prefix sharing");
        assertEquals(1, shared.launchesOf.get("gather_rows"));
        // c_attn, attn c_proj, c_fc, mlp c_proj: layers 0-1 on the 20 distinct rows, layer 2 on all 100
        assertEquals(2 * 4 * prompts * T + 4 * prompts * coalitions * T, shared.weightGemmRows);
        // the same batch where every prompt differs: no sharing, every row embedded
        ForwardRequest distinct = new ForwardRequest();
        for (int s = 0; s < q.size(); s++) {
            int[] t = q.tokens.get(s).clone();
            t[0] = s;
            distinct.add(t, q.scorePositions.get(s), q.targets.get(s));
        }
        distinct.interventions.addAll(q.interventions);
        ForwardResult wantDistinct = new CpuBackend(W).forward(distinct);
        HostDevice apart = new HostDevice(MEM);
        try (CudaBackend b = open("fp32", apart)) {
            compare(wantDistinct, b.forward(distinct), FP32_LP, 2e-4, "distinct prompts");
        }
        assertEquals((long) prompts * coalitions * T, apart.embeddedRows);
        assertEquals(3 * 4 * prompts * coalitions * T, apart.weightGemmRows);
        assertNull(apart.launchesOf.get("gather_rows"));
    }

    /** A game call in miniature: every coalition x prompt through the evaluator, as a Shapley game sends it. */
    @Test void oneGameCallIsOneForwardWithThePrefixComputedOnceOnTheDevice() {
        int prompts = 4, T = 8, coalitions = 8, first = 1;
        dev.nshap.eval.TokenizedDataset data = dev.nshap.bench.CoalitionBench.prompts(CFG, prompts, T, 9);
        java.util.List<dev.nshap.eval.Condition> conds = new ArrayList<>();
        float[] mean = Gpu.gaussian(new Random(8), CFG.nInner(), 0.3);
        Random r = new Random(10);
        for (int k = 0; k < coalitions; k++) {
            int[] units = r.ints(0, CFG.nInner()).distinct().limit(20 + k).toArray();
            conds.add(dev.nshap.eval.Condition.of(java.util.List.of(
                    Intervention.replace(HookPoint.mlpPost(first), units, null, mean),
                    Intervention.zero(HookPoint.mlpPost(2), units, null)), CFG.nLayer()));
        }
        int maxTokens = 16; // a CPU batching figure far below the 256 tokens of the call: on CUDA the planner decides
        var cpu = new dev.nshap.eval.Evaluator(new CpuBackend(W), data, 4096);
        double[][] want = cpu.evaluate(conds, cpu.allPrompts(), dev.nshap.eval.Metric.LOSS);
        HostDevice d = new HostDevice(MEM);
        try (CudaBackend b = open("fp32", d)) {
            var ev = new dev.nshap.eval.Evaluator(b, data, maxTokens);
            double[][] got = ev.evaluate(conds, ev.allPrompts(), dev.nshap.eval.Metric.LOSS);
            for (int k = 0; k < coalitions; k++)
                for (int p = 0; p < prompts; p++) assertEquals(want[k][p], got[k][p], 1e-4, "coalition " + k + " prompt " + p);
            assertEquals(1, ev.forwardPasses(), "the game call fits: one forward");
            assertEquals(1, d.launchesOf.get("embedding"), "no clean prefix shipped from the host: the device embeds");
            assertEquals((long) prompts * T, d.embeddedRows, "each distinct prompt embedded once per game call");
            assertEquals(1, d.launchesOf.get("gather_rows"));
            // the replacement means are one copy in the intervention arena, not one per coalition
            var tables = dev.nshap.backend.RequestChecks.interventionsByHook(request(conds, data), CFG, coalitions * prompts, 0);
            InterventionTable t = InterventionTable.build(tables.get(HookPoint.mlpPost(first)), CFG.nInner(), 0, coalitions * prompts);
            assertEquals(CFG.nInner(), t.vecs.length);
        }
    }

    /** The request the evaluator builds for conds over all prompts (for inspecting its tables). */
    private static ForwardRequest request(java.util.List<dev.nshap.eval.Condition> conds, dev.nshap.eval.TokenizedDataset data) {
        ForwardRequest q = new ForwardRequest();
        int n = data.size();
        for (int k = 0; k < conds.size(); k++) {
            int[] seqs = new int[n], ps = new int[n];
            for (int p = 0; p < n; p++) { q.add(data.sequences[p], data.scorePositions[p], data.answers[p]); seqs[p] = k * n + p; ps[p] = p; }
            q.interventions.addAll(conds.get(k).interventions(seqs, ps));
        }
        return q;
    }

    @Test void repeatedShapesReplayTheCapturedGraphWithTheNewTables() {
        Random r = new Random(12);
        ForwardRequest a = coalitions(r, CFG, 3, 5, 12, 1, false), b = coalitions(r, CFG, 3, 5, 12, 1, false);
        a.wantLogits = b.wantLogits = false;
        HostDevice d = new HostDevice(MEM);
        try (CudaBackend be = open("fp32", d)) {
            be.setGraphs(true); // whatever CUDA_LAUNCH_BLOCKING says: the stand-in captures nothing for real
            compare(new CpuBackend(W).forward(a), be.forward(a), FP32_LP, 0, "captured");
            assertEquals(1, d.graphCaptures);
            assertEquals(0, d.graphReplays);
            // other prompts and coalitions, same shapes: the graph is replayed and reads the new tables and tokens
            compare(new CpuBackend(W).forward(b), be.forward(b), FP32_LP, 0, "replayed");
            assertEquals(1, d.graphCaptures);
            assertEquals(1, d.graphReplays);
            ForwardRequest other = coalitions(r, CFG, 2, 5, 12, 1, false); // other shapes: a new graph
            other.wantLogits = false;
            compare(new CpuBackend(W).forward(other), be.forward(other), FP32_LP, 0, "recaptured");
            assertEquals(2, d.graphCaptures);
            be.setGraphs(false);
            int launches = d.launches;
            compare(new CpuBackend(W).forward(b), be.forward(b), FP32_LP, 0, "without graphs");
            assertEquals(1, d.graphReplays);
            assertTrue(d.launches > launches);
        }
    }

    @Test void aForwardAllocatesNothingOnceTheWorkspaceIsThere() {
        Random r = new Random(11);
        ForwardRequest q = coalitions(r, CFG, 3, 5, 12, 0, true); // every hook kind intervened, replace vectors included
        ForwardRequest smaller = coalitions(r, CFG, 2, 5, 12, 1, true);
        HostDevice d = new HostDevice(MEM);
        try (CudaBackend b = open("fp32", d)) {
            ForwardResult first = b.forward(q);
            int allocs = d.allocations, pinned = d.pinnedAllocations;
            long used = d.allocated();
            ForwardResult again = b.forward(q);
            b.forward(smaller);
            assertEquals(allocs, d.allocations, "device allocations after the first forward");
            assertEquals(pinned, d.pinnedAllocations, "pinned host allocations after the first forward");
            assertEquals(used, d.allocated(), "device bytes in use");
            for (int s = 0; s < q.size(); s++) assertArrayEquals(first.targetLogProb()[s], again.targetLogProb()[s]);
        }
    }

    @Test void additiveInterventionsInEveryPositionModeMatchTheCpu() {
        Random r = new Random(7);
        ForwardRequest q = plain(r, CFG.vocabSize(), new int[]{6, 11, 3, 9});
        float[] dirC = new float[CFG.nEmbd()], dirH = new float[CFG.nInner()];
        for (int i = 0; i < dirC.length; i++) dirC[i] = (float) r.nextGaussian();
        for (int i = 0; i < dirH.length; i++) dirH[i] = (float) r.nextGaussian();
        q.interventions.add(Intervention.add(new HookPoint(1, Kind.RESID_PRE), null, new int[]{0, 3}, dirC, 2f, 0));
        q.interventions.add(Intervention.add(HookPoint.mlpPost(0), new int[]{1, 7, 99}, new int[]{1, 3}, dirH, -1.5f, 4));
        q.interventions.add(Intervention.add(new HookPoint(2, Kind.ATTN_OUT), null, null, dirC, 0.8f, Intervention.LAST));
        for (int t = 0; t < 4; t++)
            q.interventions.add(Intervention.add(new HookPoint(1, Kind.MLP_OUT), null, new int[]{1, 2}, dirC, 1f - t, Intervention.only(t)));
        q.cache.add(new HookPoint(2, Kind.RESID_POST));
        ForwardResult want = new CpuBackend(W).forward(q);
        try (CudaBackend b = open("fp32", new HostDevice(MEM))) {
            b.setMaxRowsPerChunk(20); // chunks of two sequences: the last-position ops follow each chunk's own lengths
            compare(want, b.forward(q), FP32_LP, 2e-4, "additive");
        }
    }

    @Test void chunksWhenTheGpuIsSmallAndFailsClearlyWhenOneSequenceDoesNotFit() {
        Random r = new Random(4);
        ForwardRequest q = coalitions(r, CFG, 3, 6, 20, 1, false);
        q.cache.add(HookPoint.mlpPost(2));
        ForwardResult want = new CpuBackend(W).forward(q);
        try (CudaBackend b = open("fp32", new HostDevice(MEM))) {
            b.setMaxRowsPerChunk(45); // 18 sequences of 20 tokens: chunks of 2
            compare(want, b.forward(q), FP32_LP, 2e-4, "chunked");
        }
        // memory for the weights and about 60 token rows: the planner chunks by itself
        CudaBackend probe = open("fp32", new HostDevice(MEM));
        long weights = MEM - probe.device().memInfo()[0];
        long small = weights + probe.fixedBytes() + 70 * probe.bytesPerRow();
        probe.close();
        try (CudaBackend b = open("fp32", new HostDevice(small))) {
            compare(want, b.forward(q), FP32_LP, 2e-4, "planned chunks");
            ForwardRequest big = plain(r, CFG.vocabSize(), new int[]{100});
            NshapException e = assertThrows(NshapException.class, () -> b.forward(big));
            assertTrue(e.getMessage().contains("too small"), e.getMessage());
        }
    }

    @Test void startLayerWithoutLogits() {
        Random r = new Random(5);
        ForwardRequest base = coalitions(r, CFG, 2, 3, 9, 1, true);
        base.cache.add(new HookPoint(1, Kind.RESID_PRE));
        ForwardResult full = new CpuBackend(W).forward(base);
        ForwardRequest q = new ForwardRequest();
        for (int s = 0; s < base.size(); s++) q.add(base.tokens.get(s), base.scorePositions.get(s), base.targets.get(s));
        q.interventions.addAll(base.interventions);
        q.startLayer = 1;
        q.startResidual = new ArrayList<>(java.util.List.of(full.cache().get(new HookPoint(1, Kind.RESID_PRE))));
        q.wantLogits = false;
        try (CudaBackend b = open("fp32", new HostDevice(MEM))) {
            ForwardResult got = b.forward(q);
            compare(new CpuBackend(W).forward(q), got, FP32_LP, 0, "start layer");
            for (int s = 0; s < q.size(); s++) {
                assertNull(got.logits()[s]);
                for (int i = 0; i < full.targetLogProb()[s].length; i++)
                    assertEquals(full.targetLogProb()[s][i], got.targetLogProb()[s][i], FP32_LP);
            }
        }
    }

    @Test void manyScoredPositionsSpanSeveralLogitSlabs() {
        Random r = new Random(6);
        ForwardRequest q = plain(r, CFG.vocabSize(), new int[]{100, 100, 90}); // 290 scored rows > one slab of 256
        q.add(TestModels.randomTokens(r, 5, CFG.vocabSize()), null, null);   // nothing scored
        ForwardResult want = new CpuBackend(W).forward(q);
        try (CudaBackend b = open("fp32", new HostDevice(MEM))) {
            ForwardResult got = b.forward(q);
            compare(want, got, FP32_LP, 2e-4, "slabs");
            assertNull(got.top1()[3]);
        }
    }

    @Test void badRequestsAreInputErrors() {
        try (CudaBackend b = open("fp32", new HostDevice(MEM))) {
            assertThrows(NshapException.class, () -> b.forward(new ForwardRequest()));
            ForwardRequest q = new ForwardRequest().addLast(new int[]{1, 2, 3});
            q.interventions.add(Intervention.zero(HookPoint.mlpPost(0), new int[]{CFG.nInner()}, null));
            assertThrows(NshapException.class, () -> b.forward(q));
            ForwardRequest q2 = new ForwardRequest().addLast(new int[]{1, CFG.vocabSize()});
            assertThrows(NshapException.class, () -> b.forward(q2));
            ForwardRequest q3 = new ForwardRequest().addLast(new int[]{1, 2});
            q3.interventions.add(Intervention.scale(HookPoint.mlpPost(1), null, new int[]{1}, 2f));
            assertThrows(NshapException.class, () -> b.forward(q3));
        }
        assertThrows(NshapException.class, () -> new CudaBackend(W, "fp16", false, new HostDevice(MEM)));
        GPT2Weights odd = TestModels.random(new GPT2Config(1, 3, 36, 8, 20, 1e-5, "gelu_new"), 1, 0.1f);
        assertThrows(NshapException.class, () -> new CudaBackend(odd, "fp32", false, new HostDevice(MEM)));
    }
}
