package dev.nshap.model;

import com.knuddels.jtokkit.Encodings;
import com.knuddels.jtokkit.api.Encoding;
import com.knuddels.jtokkit.api.EncodingType;
import com.knuddels.jtokkit.api.IntArrayList;
import dev.nshap.NshapException;

/** GPT-2's own BPE (tiktoken's r50k_base), for checkpoints that ship no vocab.json/merges.txt. */
public final class JTokkitTokenizer implements Tokenizer {
    private static final Encoding R50K = Encodings.newLazyEncodingRegistry().getEncoding(EncodingType.R50K_BASE);
    public static final int EOT = 50256;
    public static final String EOT_TEXT = "<|endoftext|>";

    public static final JTokkitTokenizer GPT2 = new JTokkitTokenizer();

    private JTokkitTokenizer() {}

    /** {@code <|endoftext|>} in the text becomes the end-of-text token, as in GPT-2's training data. */
    @Override public int[] encode(String text) {
        // jtokkit refuses special tokens in encode(); split on them ourselves.
        IntArrayList out = new IntArrayList();
        int from = 0;
        while (true) {
            int at = text.indexOf(EOT_TEXT, from);
            IntArrayList part = R50K.encodeOrdinary(text.substring(from, at < 0 ? text.length() : at));
            for (int i = 0; i < part.size(); i++) out.add(part.get(i));
            if (at < 0) break;
            out.add(EOT);
            from = at + EOT_TEXT.length();
        }
        return out.toArray();
    }

    @Override public String decode(int[] tokens) {
        IntArrayList l = new IntArrayList(tokens.length);
        for (int t : tokens) {
            if (t < 0 || t >= vocabSize()) throw new NshapException("token id " + t + " is outside r50k_base (0.." + (vocabSize() - 1) + ")");
            l.add(t);
        }
        return R50K.decode(l);
    }

    @Override public String decode(int token) { return decode(new int[]{token}); }
    @Override public int vocabSize() { return GPT2Config.GPT2_VOCAB; }
    @Override public int eotToken() { return EOT; }
    @Override public String name() { return "r50k_base"; }
}
