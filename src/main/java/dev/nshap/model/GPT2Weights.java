package dev.nshap.model;

/**
 * All parameters as flat float arrays in Hugging Face's GPT-2 layout: the Conv1D weights are stored
 * [in, out] row-major, so y = x W + b walks W row by row (a good shape for the Vector API).
 */
public final class GPT2Weights {
    public final GPT2Config config;
    public final float[] wte;      // [V, C]
    public final float[] wpe;      // [P, C]
    public final Block[] blocks;
    public final float[] lnfW, lnfB; // [C]
    /** [V, C]; the same array as {@link #wte} when the unembedding is tied. */
    public final float[] lmHead;

    public static final class Block {
        public final float[] ln1W, ln1B;          // [C]
        public final float[] attnW, attnB;        // c_attn: [C, 3C], [3C]
        public final float[] attnProjW, attnProjB; // c_proj: [C, C], [C]
        public final float[] ln2W, ln2B;          // [C]
        public final float[] fcW, fcB;            // mlp.c_fc: [C, 4C], [4C]
        public final float[] projW, projB;        // mlp.c_proj: [4C, C], [C]

        public Block(GPT2Config c) {
            int C = c.nEmbd(), H = c.nInner();
            ln1W = new float[C]; ln1B = new float[C];
            attnW = new float[C * 3 * C]; attnB = new float[3 * C];
            attnProjW = new float[C * C]; attnProjB = new float[C];
            ln2W = new float[C]; ln2B = new float[C];
            fcW = new float[C * H]; fcB = new float[H];
            projW = new float[H * C]; projB = new float[C];
        }
    }

    /** Zero-filled weights of the right shapes (loaders and initialisers fill them). */
    public GPT2Weights(GPT2Config c, boolean tiedHead) {
        this.config = c;
        int C = c.nEmbd();
        wte = new float[Math.multiplyExact(c.vocabSize(), C)];
        wpe = new float[c.nPositions() * C];
        blocks = new Block[c.nLayer()];
        for (int l = 0; l < blocks.length; l++) blocks[l] = new Block(c);
        lnfW = new float[C];
        lnfB = new float[C];
        lmHead = tiedHead ? wte : new float[wte.length];
    }

    public boolean tied() { return lmHead == wte; }

    public long parameterCount() {
        GPT2Config c = config;
        long C = c.nEmbd(), H = c.nInner();
        long perBlock = 4 * C + (C * 3 * C + 3 * C) + (C * C + C) + (C * H + H) + (H * C + C);
        return (long) wte.length + wpe.length + c.nLayer() * perBlock + 2 * C + (tied() ? 0 : lmHead.length);
    }
}
