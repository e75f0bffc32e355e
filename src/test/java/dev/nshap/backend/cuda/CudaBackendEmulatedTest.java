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
        ForwardRequest q = coalitions(r, CFG, 2, 5, 10, 2, false);
        q.cache.add(new HookPoint(0, Kind.MLP_POST));
        q.cache.add(new HookPoint(1, Kind.RESID_POST));
        q.cache.add(new HookPoint(2, Kind.RESID_PRE));
        ForwardResult want = new CpuBackend(W).forward(q);
        HostDevice shared = new HostDevice(MEM);
        try (CudaBackend b = open("fp32", shared)) {
            compare(want, b.forward(q), FP32_LP, 2e-4, "broadcast prefix");
        }
        // the same batch where every prompt differs: no sharing, so more work in the first two layers
        ForwardRequest distinct = new ForwardRequest();
        for (int s = 0; s < q.size(); s++) {
            int[] t = q.tokens.get(s).clone();
            t[0] = s;
            distinct.add(t, q.scorePositions.get(s), q.targets.get(s));
        }
        distinct.interventions.addAll(q.interventions);
        ForwardResult wantDistinct = new CpuBackend(W).forward(distinct);
        try (CudaBackend b = open("fp32", new HostDevice(MEM))) {
            compare(wantDistinct, b.forward(distinct), FP32_LP, 2e-4, "distinct prompts");
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
