package dev.nshap.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Spec;

/**
 * {@code nshap model ...}: checkpoint tools. Placeholder holding only the converter's subcommands until the full
 * ModelCommand (init, inspect) lands on main; merging keeps both lists.
 */
@Command(name = "model", mixinStandardHelpOptions = true,
        description = "Create and examine GPT-2 checkpoints (Hugging Face layout: config.json + model.safetensors).",
        subcommands = {
                dev.nshap.convert.VerifyCommand.class,
                dev.nshap.convert.PullCommand.class,
        })
public final class ModelCommand implements Runnable {
    @Spec CommandLine.Model.CommandSpec spec;

    @Override public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }
}
