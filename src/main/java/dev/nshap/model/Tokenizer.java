package dev.nshap.model;

/** Text <-> GPT-2 token ids. */
public interface Tokenizer {
    int[] encode(String text);
    String decode(int[] tokens);
    String decode(int token);
    int vocabSize();
    /** The {@code <|endoftext|>} id, or -1 when the vocabulary has none. */
    int eotToken();
    String name();
}
