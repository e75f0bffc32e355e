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
                ShapleyCommand.class,
                dev.nshap.convert.ConvertCommand.class,
                ClustersCommand.class,
                DatasetsCommand.class,
                ImpairCommand.class, SpecificityCommand.class, NeuronCommand.class, PlotCommand.class,
        })
public final class Main implements Runnable {

    public static void main(String[] args) {
        System.exit(run(args));
    }

    /** Runs the CLI and returns its exit code: 0 ok, 2 bad input (one line on stderr), 1 internal error. */
    public static int run(String... args) {
        CommandLine cl = new CommandLine(new Main());
        // Bad arguments get one line and a pointer to --help, not the whole usage text.
        cl.setParameterExceptionHandler((ex, a) -> {
            CommandLine c = ex.getCommandLine();
            c.getErr().println("nshap: " + ex.getMessage().replace('\n', ' ') + " (see '" + c.getCommandSpec().qualifiedName() + " --help')");
            return 2;
        });
        cl.setExecutionExceptionHandler((ex, cmd, parsed) -> {
            Throwable t = ex;
            while (t instanceof CommandLine.ExecutionException && t.getCause() != null) t = t.getCause();
            if (t instanceof NshapException) {
                cmd.getErr().println("nshap: " + t.getMessage());
                return 2;
            }
            if (t instanceof UncheckedIOException) {
                cmd.getErr().println("nshap: " + t.getMessage());
                return 1;
            }
            throw ex;
        });
        return cl.execute(args);
    }

    @Override public void run() {
        new CommandLine(this).usage(System.out);
    }
}
