package dev.nshap.cli;

import dev.nshap.NshapException;
import picocli.CommandLine;
import picocli.CommandLine.Command;

import java.io.UncheckedIOException;

@Command(name = "nshap", mixinStandardHelpOptions = true, version = "nshap 0.1.0",
        description = "Neuron Shapley attribution for GPT-2: rank MLP neurons per topic, export clusters, impair them.",
        subcommands = {
                CommandLine.HelpCommand.class,
                DemoCommand.class,
                ModelCommand.class,
                ForwardCommand.class,
                EvaluateCommand.class,
                BenchCommand.class,
                CudaInfoCommand.class,
                BackendsCommand.class,
                ShapleyCommand.class, WorkerCommand.class,
                AttributeCommand.class,
                dev.nshap.convert.ConvertCommand.class,
                ClustersCommand.class,
                DatasetsCommand.class,
                ImpairCommand.class, SpecificityCommand.class, NeuronCommand.class, PlotCommand.class,
                TrainCommand.class, CacheCommand.class, SteerCommand.class, LensCommand.class,
        })
public final class Main implements Runnable {

    public static void main(String[] args) {
        directStderr();
        System.exit(run(args));
    }

    /**
     * The launcher script filters the JVM's own stderr (to drop its incubator-module warning) and passes the real
     * stderr as {@code -Dnshap.stderr=/dev/fd/3}: everything nshap prints goes there directly, so no line is delayed
     * behind the filter or lost when it exits.
     */
    private static void directStderr() {
        String f = System.getProperty("nshap.stderr");
        if (f == null || f.isEmpty()) return;
        try {
            System.setErr(new java.io.PrintStream(new java.io.FileOutputStream(f, true), true, java.nio.charset.StandardCharsets.UTF_8));
        } catch (java.io.IOException | SecurityException ignored) { }   // keep the filtered one
    }

    /** Runs the CLI and returns its exit code: 0 ok, 2 bad input (one line on stderr), 1 internal error. */
    public static int run(String... args) {
        CommandLine cl = new CommandLine(new Main());
        showDefaults(cl);
        // Bad arguments get one line and a pointer to --help, not the whole usage text.
        cl.setParameterExceptionHandler((ex, a) -> {
            CommandLine c = ex.getCommandLine();
            String hint = "";
            if (ex instanceof CommandLine.UnmatchedArgumentException u && !u.getSuggestions().isEmpty())
                hint = " (did you mean " + String.join(" or ", u.getSuggestions().subList(0, Math.min(3, u.getSuggestions().size()))) + "?)";
            c.getErr().println(errorLine(ex.getMessage() + hint + " (see '" + c.getCommandSpec().qualifiedName() + " --help')"));
            return 2;
        });
        cl.setExecutionExceptionHandler((ex, cmd, parsed) -> {
            Throwable t = ex;
            while (t instanceof CommandLine.ExecutionException && t.getCause() != null) t = t.getCause();
            if (t instanceof NshapException) {
                cmd.getErr().println(errorLine(t.getMessage()));
                return 2;
            }
            if (t instanceof UncheckedIOException) {
                cmd.getErr().println(errorLine(t.getMessage()));
                return 1;
            }
            throw ex;
        });
        return cl.execute(args);
    }

    /**
     * The one place an error reaches the user: "nshap: " and one line, whatever the message holds (a header
     * string, a file name or a prompt may carry newlines or terminal control characters).
     */
    public static String errorLine(String message) {
        String m = message == null ? "error" : message;
        StringBuilder sb = new StringBuilder("nshap: ");
        for (int i = 0; i < m.length(); i++) {
            char ch = m.charAt(i);
            if (ch == '\n' || ch == '\r' || ch == '\t') sb.append(' ');
            else if (Character.isISOControl(ch)) sb.append(String.format("\\u%04x", (int) ch));
            else sb.append(ch);
        }
        return sb.toString().strip();
    }

    /** Every option's default in every command's --help (those whose text already names it keep their wording). */
    private static void showDefaults(CommandLine cl) {
        CommandLine.Model.CommandSpec spec = cl.getCommandSpec();
        spec.usageMessage().showDefaultValues(true);
        for (CommandLine.Model.OptionSpec o : new java.util.ArrayList<>(spec.options())) {
            if (o.showDefaultValue() != CommandLine.Help.Visibility.ON_DEMAND || o.group() != null) continue;
            String d = String.join(" ", o.description()).toLowerCase(java.util.Locale.ROOT);
            if (!d.contains("default")) continue;
            // its own text already says the default (often with a why): picocli's "Default: x" line would repeat it
            spec.remove(o);
            spec.addOption(CommandLine.Model.OptionSpec.builder(o).showDefaultValue(CommandLine.Help.Visibility.NEVER).build());
        }
        for (CommandLine sub : cl.getSubcommands().values()) showDefaults(sub);
    }

    @Override public void run() {
        new CommandLine(this).usage(System.out);
    }
}
