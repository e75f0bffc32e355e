package dev.nshap.convert;

import dev.nshap.NshapException;
import dev.nshap.model.Checkpoint;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.GPT2Weights;
import dev.nshap.model.SafeTensors;
import dev.nshap.util.Progress;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * llm.c checkpoints ({@code gpt2_124M.bin}, {@code gpt2_124M_bf16.bin}): a header of 256 little-endian int32
 * (magic 20240326, version 3 = fp32 or 5 = bf16, maxT, V, L, NH, C, Vp), then the 16 parameter tensors back to back
 * in llm.c's order: wte (Vp,C), wpe (maxT,C), ln1w (L,C), ln1b (L,C), qkvw (L,3C,C), qkvb (L,3C), attprojw (L,C,C),
 * attprojb (L,C), ln2w (L,C), ln2b (L,C), fcw (L,4C,C), fcb (L,4C), fcprojw (L,C,4C), fcprojb (L,C), lnfw (C),
 * lnfb (C). Matmul weights are PyTorch Linear [out, in] and are transposed to Conv1D [in, out]; the vocabulary
 * padding rows V..Vp-1 of wte are dropped.
 */
public final class LlmcReader {
    public static final int MAGIC = 20240326;
    static final int HEADER_INTS = 256;

    private LlmcReader() {}

    public static boolean sniff(byte[] head) {
        return head.length >= 4 && ByteBuffer.wrap(head, 0, 4).order(ByteOrder.LITTLE_ENDIAN).getInt() == MAGIC;
    }

    public record Result(GPT2Weights weights, String dtype) {}

    public static Result read(Path file) {
        String where = file.toString();
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = ch.size();
            if (size < HEADER_INTS * 4L) throw new NshapException(where + ": truncated llm.c header (" + size + " bytes, need 1024)");
            ByteBuffer hb = ByteBuffer.allocate(HEADER_INTS * 4).order(ByteOrder.LITTLE_ENDIAN);
            while (hb.hasRemaining()) if (ch.read(hb, hb.position()) < 0) break;
            int[] h = new int[HEADER_INTS];
            hb.flip();
            hb.asIntBuffer().get(h);
            if (h[0] != MAGIC) throw new NshapException(where + ": bad llm.c magic " + h[0] + " (expected " + MAGIC + ")");
            int esize;
            String dtype;
            if (h[1] == 3) { esize = 4; dtype = "F32"; }
            else if (h[1] == 5) { esize = 2; dtype = "BF16"; }
            else throw new NshapException(where + ": llm.c version " + h[1] + " is not supported (3 = fp32, 5 = bf16)");
            int maxT = h[2], V = h[3], L = h[4], NH = h[5], C = h[6], Vp = h[7];
            if (maxT <= 0 || V <= 0 || L <= 0 || NH <= 0 || C <= 0 || Vp < V)
                throw new NshapException(where + ": llm.c header has impossible sizes maxT=" + maxT + " V=" + V + " L=" + L
                        + " NH=" + NH + " C=" + C + " Vp=" + Vp);
            long lC = C;
            long[] sizes = {(long) Vp * lC, (long) maxT * lC, L * lC, L * lC, L * 3 * lC * lC, L * 3 * lC, L * lC * lC, L * lC,
                    L * lC, L * lC, L * 4 * lC * lC, L * 4 * lC, L * lC * 4 * lC, L * lC, lC, lC};
            long total = 0;
            for (long s : sizes) total += s;
            long want = HEADER_INTS * 4L + total * esize;
            if (size != want)
                throw new NshapException(where + ": llm.c header (maxT=" + maxT + " V=" + V + " Vp=" + Vp + " L=" + L + " C=" + C
                        + ", " + (esize == 4 ? "fp32" : "bf16") + ") needs " + want + " bytes but the file has " + size
                        + (size < want ? ": truncated file or lying header" : ": trailing bytes"));
            if ((long) V * C > Integer.MAX_VALUE - 8 || 4 * lC * lC > Integer.MAX_VALUE - 8)
                throw new NshapException(where + ": model too large for one array per tensor");
            GPT2Config cfg = new GPT2Config(L, NH, C, maxT, V, 1e-5, "gelu_new");
            Checkpoint.requireHeap(4 * Checkpoint.parameterCount(cfg, true), "converting " + where);
            GPT2Weights w = new GPT2Weights(cfg, true);
            Progress progress = new Progress("reading " + file.getFileName(), 16);
            long[] off = new long[16];
            long o = HEADER_INTS * 4L;
            for (int i = 0; i < 16; i++) { off[i] = o; o += sizes[i] * esize; }
            Buf b = new Buf(ch, esize);
            b.read(off[0], w.wte, 0, V * C); // rows V..Vp-1 are padding
            b.read(off[1], w.wpe, 0, maxT * C);
            progress.update(2);
            int C3 = 3 * C, C4 = 4 * C;
            float[] tmp = new float[C4 * C];
            for (int l = 0; l < L; l++) {
                GPT2Weights.Block k = w.blocks[l];
                b.read(off[2] + (long) l * C * esize, k.ln1W, 0, C);
                b.read(off[3] + (long) l * C * esize, k.ln1B, 0, C);
                b.read(off[4] + (long) l * C3 * C * esize, tmp, 0, C3 * C);
                transpose(tmp, C3, C, k.attnW);
                b.read(off[5] + (long) l * C3 * esize, k.attnB, 0, C3);
                b.read(off[6] + (long) l * C * C * esize, tmp, 0, C * C);
                transpose(tmp, C, C, k.attnProjW);
                b.read(off[7] + (long) l * C * esize, k.attnProjB, 0, C);
                b.read(off[8] + (long) l * C * esize, k.ln2W, 0, C);
                b.read(off[9] + (long) l * C * esize, k.ln2B, 0, C);
                b.read(off[10] + (long) l * C4 * C * esize, tmp, 0, C4 * C);
                transpose(tmp, C4, C, k.fcW);
                b.read(off[11] + (long) l * C4 * esize, k.fcB, 0, C4);
                b.read(off[12] + (long) l * C * C4 * esize, tmp, 0, C * C4);
                transpose(tmp, C, C4, k.projW);
                b.read(off[13] + (long) l * C * esize, k.projB, 0, C);
            }
            progress.update(14);
            b.read(off[14], w.lnfW, 0, C);
            b.read(off[15], w.lnfB, 0, C);
            progress.update(16);
            return new Result(w, dtype);
        } catch (NoSuchFileException e) {
            throw new NshapException(where + ": no such file");
        } catch (IOException e) {
            throw new NshapException(where + ": cannot read: " + e.getMessage());
        }
    }

    /** src is [rows, cols] row-major (Linear [out, in]); dst gets [cols, rows] (Conv1D [in, out]). */
    static void transpose(float[] src, int rows, int cols, float[] dst) {
        final int B = 32;
        for (int r0 = 0; r0 < rows; r0 += B)
            for (int c0 = 0; c0 < cols; c0 += B) {
                int r1 = Math.min(rows, r0 + B), c1 = Math.min(cols, c0 + B);
                for (int r = r0; r < r1; r++)
                    for (int c = c0; c < c1; c++) dst[c * rows + r] = src[r * cols + c];
            }
    }

    private record Buf(FileChannel ch, int esize) {
        void read(long pos, float[] dst, int dstOff, int n) throws IOException {
            int chunk = (1 << 28) / esize;
            for (int done = 0; done < n; ) {
                int k = Math.min(chunk, n - done);
                MappedByteBuffer mb = ch.map(FileChannel.MapMode.READ_ONLY, pos + (long) done * esize, (long) k * esize);
                mb.order(ByteOrder.LITTLE_ENDIAN);
                if (esize == 4) mb.asFloatBuffer().get(dst, dstOff + done, k);
                else for (int i = 0; i < k; i++) dst[dstOff + done + i] = SafeTensors.bf16ToFloat(mb.getShort(2 * i));
                done += k;
            }
        }
    }
}
