package dev.nshap.convert;

/**
 * One tensor of a checkpoint being converted, read on demand.
 *
 * @param name     its name in the source (Hugging Face names, with or without the {@code transformer.} prefix)
 * @param dtype    safetensors dtype name of the stored elements (F32, F16, BF16, F64, or an integer type for buffers)
 * @param storage  for formats where tensors are views into shared storages: the storage's key, else null
 * @param begin    first element of the view in its storage (inclusive), when {@code storage} is set
 * @param last     last element the view touches (inclusive; begin - 1 for an empty view)
 */
public record SourceTensor(String name, long[] shape, String dtype, Reader reader, String storage, long begin, long last) {

    @FunctionalInterface
    public interface Reader { void read(float[] dst); }

    public static SourceTensor plain(String name, long[] shape, String dtype, Reader reader) {
        return new SourceTensor(name, shape, dtype, reader, null, 0, -1);
    }

    public long elementCount() {
        long n = 1;
        for (long d : shape) n = Math.multiplyExact(n, d);
        return n;
    }
}
