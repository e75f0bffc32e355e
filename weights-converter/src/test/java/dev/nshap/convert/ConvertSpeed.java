package dev.nshap.convert;

import dev.nshap.model.Checkpoint;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.GPT2Weights;
import dev.nshap.model.ModelInit;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/**
 * Manual measurement (not a test): conversion speed for a GPT-2-small-sized checkpoint in each format.
 * Run: java --add-modules jdk.incubator.vector -Xmx8g -cp CLASSPATH dev.nshap.convert.ConvertSpeed /tmp/nshap-speed
 */
public final class ConvertSpeed {
    public static void main(String[] args) throws Exception {
        Path dir = Path.of(args.length > 0 ? args[0] : "/tmp/nshap-speed");
        Converter.deleteTree(dir);
        Files.createDirectories(dir);
        GPT2Config c = GPT2Config.preset("small");
        GPT2Weights w = ModelInit.random(c, 1);
        Path st = dir.resolve("hf"), pt = Files.createDirectories(dir.resolve("pt")), llmc = dir.resolve("gpt2_124M.bin");
        Checkpoint.write(st, w, "f32", null);
        Files.copy(st.resolve("config.json"), pt.resolve("config.json"));
        Fixtures.writeTorchZip(pt.resolve("pytorch_model.bin"), w, "F32");
        Fixtures.writeLlmc(llmc, w, false, 50304);
        w = null;
        String[][] runs = {{"hf-safetensors f32 -> f32", st.toString(), "f32"}, {"hf-safetensors f32 -> bf16", st.toString(), "bf16"},
                {"pytorch zip f32 -> f32", pt.toString(), "f32"}, {"llm.c fp32 -> f32", llmc.toString(), "f32"}};
        for (int rep = 0; rep < 2; rep++)
            for (String[] r : runs) {
                Path out = dir.resolve("out");
                Converter.deleteTree(out);
                long t0 = System.nanoTime();
                Converter.load(Path.of(r[1]));
                double read = (System.nanoTime() - t0) / 1e9;
                Converter.Result res = Converter.convert(Path.of(r[1]), out, r[2], false);
                System.out.printf(Locale.ROOT, "%-30s %7.1f MB in %6.2f s = %6.1f MB/s (output %.1f MB; reading alone %.2f s)%n",
                        r[0], res.inputBytes() / 1e6, res.seconds(), res.mbPerSecond(), res.outputBytes() / 1e6, read);
            }
        Converter.deleteTree(dir);
    }
}
