package dev.nshap.eval;

/** One line of a topic dataset: the prompt, the keyword that follows it, an optional foil. */
public record Prompt(String id, String topic, String prompt, String answer, String foil, String source) {
}
