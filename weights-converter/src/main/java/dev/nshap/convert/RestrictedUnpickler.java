package dev.nshap.convert;

import dev.nshap.NshapException;

import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Reads the pickle of a PyTorch checkpoint as data, never as code. Only the opcodes that build plain values
 * (ints, floats, strings, tuples, lists, dicts) are understood, and the only callables a pickle may name are the
 * few PyTorch itself writes for a state dict: {@code collections.OrderedDict}, {@code torch._utils._rebuild_tensor_v2}
 * (and its v1 and Parameter variants) and the {@code torch.*Storage} classes. Those are not called either: they
 * become Java records describing the tensor. Any other global or opcode refuses the whole file.
 */
public final class RestrictedUnpickler {

    /** A torch.FooStorage class named by the pickle: the element type of a storage. */
    public record StorageType(String name, String dtype, int elementSize) {}

    /** A persistent id resolved by the container: raw storage bytes somewhere in the file. */
    public record StorageRef(StorageType type, String key, long numel) {}

    /** The arguments of {@code _rebuild_tensor_v2}: a strided view into a storage. */
    public record TensorRef(StorageRef storage, long offset, long[] size, long[] stride) {}

    /** A Python tuple (kept apart from lists so the structure can be checked). */
    public record Tuple(List<Object> items) {
        public int size() { return items.size(); }
        public Object get(int i) { return items.get(i); }
    }

    /** A Python None (Java collections here may hold it). */
    public static final Object NONE = new Object() { @Override public String toString() { return "None"; } };

    private enum Callable { ORDERED_DICT, REBUILD_TENSOR_V2, REBUILD_TENSOR, REBUILD_PARAMETER }

    /** Resolves a persistent id (BINPERSID) to a value; the container format decides what ids mean. */
    @FunctionalInterface
    public interface PersistentLoader { Object load(Object pid); }

    private static final Map<String, StorageType> STORAGES = new HashMap<>();
    static {
        for (StorageType t : new StorageType[]{
                new StorageType("FloatStorage", "F32", 4), new StorageType("HalfStorage", "F16", 2),
                new StorageType("BFloat16Storage", "BF16", 2), new StorageType("DoubleStorage", "F64", 8),
                new StorageType("LongStorage", "I64", 8), new StorageType("IntStorage", "I32", 4),
                new StorageType("ShortStorage", "I16", 2), new StorageType("CharStorage", "I8", 1),
                new StorageType("ByteStorage", "U8", 1), new StorageType("BoolStorage", "BOOL", 1)})
            STORAGES.put(t.name, t);
    }

    private static final Object MARK = new Object();
    private static final int MAX_MEMO = 1 << 24;

    private final byte[] buf;
    private final int end;
    private final String where;
    private final PersistentLoader persistent;
    private int pos;

    private RestrictedUnpickler(byte[] buf, int start, int end, String where, PersistentLoader persistent) {
        this.buf = buf;
        this.pos = start;
        this.end = end;
        this.where = where;
        this.persistent = persistent;
    }

    /** Unpickles the whole of {@code data}; trailing bytes after STOP are an error. */
    public static Object load(byte[] data, String where, PersistentLoader persistent) {
        RestrictedUnpickler u = new RestrictedUnpickler(data, 0, data.length, where, persistent);
        Object o = u.run();
        if (u.pos != data.length)
            throw new NshapException(where + ": " + (data.length - u.pos) + " stray bytes after the pickle's STOP");
        return o;
    }

    /** Unpickles one pickle starting at {@code start}; returns the value and the position after its STOP. */
    public static Object[] loadAt(byte[] data, int start, int end, String where, PersistentLoader persistent) {
        RestrictedUnpickler u = new RestrictedUnpickler(data, start, end, where, persistent);
        Object o = u.run();
        return new Object[]{o, u.pos};
    }

    private NshapException bad(String msg) {
        return new NshapException(where + ": pickle byte " + pos + ": " + msg);
    }

    private int u8() {
        if (pos >= end) throw bad("truncated pickle");
        return buf[pos++] & 0xFF;
    }

    private long le(int n) {
        if (end - pos < n) throw bad("truncated pickle");
        long v = 0;
        for (int i = 0; i < n; i++) v |= (long) (buf[pos + i] & 0xFF) << (8 * i);
        pos += n;
        return v;
    }

    private byte[] take(long n) {
        if (n < 0 || n > end - pos) throw bad("a string or bytes of " + n + " bytes runs past the end of the pickle");
        byte[] b = new byte[(int) n];
        System.arraycopy(buf, pos, b, 0, (int) n);
        pos += (int) n;
        return b;
    }

    private String line() {
        int s = pos;
        while (pos < end && buf[pos] != '\n') {
            if (pos - s > 256) throw bad("GLOBAL name longer than 256 bytes");
            pos++;
        }
        if (pos >= end) throw bad("truncated GLOBAL");
        String r = new String(buf, s, pos - s, StandardCharsets.UTF_8);
        pos++;
        return r;
    }

    private Object run() {
        List<Object> stack = new ArrayList<>();
        List<Integer> marks = new ArrayList<>();
        Map<Long, Object> memo = new HashMap<>();
        while (true) {
            int at = pos;
            int op = u8();
            switch (op) {
                case 0x80 -> { // PROTO
                    int v = u8();
                    if (v > 5) throw bad("pickle protocol " + v + " is newer than any PyTorch writes");
                }
                case 0x95 -> le(8); // FRAME: a length hint only
                case '.' -> { // STOP
                    if (stack.size() != 1 || !marks.isEmpty()) throw bad("STOP with " + stack.size() + " values on the stack");
                    return stack.get(0);
                }
                case '(' -> { marks.add(stack.size()); stack.add(MARK); }
                case '0' -> pop(stack);
                case '1' -> popMark(stack, marks);
                case '2' -> stack.add(peek(stack));
                case 'J' -> stack.add((long) (int) le(4));
                case 'K' -> stack.add((long) u8());
                case 'M' -> stack.add(le(2));
                case 0x8a -> { // LONG1
                    int n = u8();
                    if (n > 16) throw bad("LONG1 of " + n + " bytes");
                    byte[] b = take(n);
                    stack.add(longValue(b));
                }
                case 'N' -> stack.add(NONE);
                case 0x88 -> stack.add(Boolean.TRUE);
                case 0x89 -> stack.add(Boolean.FALSE);
                case 'G' -> stack.add(Double.longBitsToDouble(Long.reverseBytes(le(8))));
                case 'X' -> stack.add(new String(take(le(4)), StandardCharsets.UTF_8));
                case 0x8c -> stack.add(new String(take(u8()), StandardCharsets.UTF_8));
                case 0x8d -> stack.add(new String(take(le(8)), StandardCharsets.UTF_8));
                case 'U' -> stack.add(new String(take(u8()), StandardCharsets.ISO_8859_1));
                case 'T' -> stack.add(new String(take((int) le(4)), StandardCharsets.ISO_8859_1));
                case 'C' -> stack.add(take(u8()));
                case 'B' -> stack.add(take(le(4)));
                case ')' -> stack.add(new Tuple(List.of()));
                case 't' -> stack.add(new Tuple(popMark(stack, marks)));
                case 0x85 -> { Object a = pop(stack); stack.add(new Tuple(listOf(a))); }
                case 0x86 -> { Object b = pop(stack), a = pop(stack); stack.add(new Tuple(listOf(a, b))); }
                case 0x87 -> { Object c = pop(stack), b = pop(stack), a = pop(stack); stack.add(new Tuple(listOf(a, b, c))); }
                case ']' -> stack.add(new ArrayList<>());
                case 'l' -> stack.add(new ArrayList<>(popMark(stack, marks)));
                case 'a' -> { Object v = pop(stack); asList(peek(stack)).add(v); }
                case 'e' -> { List<Object> items = popMark(stack, marks); asList(peek(stack)).addAll(items); }
                case '}' -> stack.add(new LinkedHashMap<>());
                case 'd' -> {
                    List<Object> items = popMark(stack, marks);
                    Map<Object, Object> m = new LinkedHashMap<>();
                    putAll(m, items);
                    stack.add(m);
                }
                case 's' -> { Object v = pop(stack), k = pop(stack); put(asMap(peek(stack)), k, v); }
                case 'u' -> { List<Object> items = popMark(stack, marks); putAll(asMap(peek(stack)), items); }
                case 'q' -> memo(memo, u8(), peek(stack));
                case 'r' -> memo(memo, le(4), peek(stack));
                case 0x94 -> memo(memo, memo.size(), peek(stack));
                case 'h' -> stack.add(recall(memo, u8()));
                case 'j' -> stack.add(recall(memo, le(4)));
                case 'c' -> { String module = line(), name = line(); stack.add(global(module, name)); }
                case 0x93 -> { // STACK_GLOBAL
                    Object name = pop(stack), module = pop(stack);
                    if (!(module instanceof String) || !(name instanceof String)) throw bad("STACK_GLOBAL without two strings");
                    stack.add(global((String) module, (String) name));
                }
                case 'R' -> { Object args = pop(stack), fn = pop(stack); stack.add(reduce(fn, args)); }
                case 'b' -> { Object state = pop(stack); build(peek(stack), state); }
                case 'Q' -> {
                    if (persistent == null) throw bad("persistent id where none is allowed");
                    stack.add(persistent.load(pop(stack)));
                }
                default -> {
                    pos = at;
                    throw bad("opcode " + opName(op) + " is not allowed in a checkpoint (refusing: it could build "
                            + "arbitrary objects)");
                }
            }
        }
    }

    private static List<Object> listOf(Object... xs) {
        List<Object> l = new ArrayList<>(xs.length);
        for (Object x : xs) l.add(x);
        return l;
    }

    private static String opName(int op) {
        String name = switch (op) {
            case 'i' -> "INST"; case 'o' -> "OBJ"; case 0x81 -> "NEWOBJ"; case 0x92 -> "NEWOBJ_EX";
            case 0x82, 0x83, 0x84 -> "EXT"; case 'P' -> "PERSID"; case 'g' -> "GET"; case 'p' -> "PUT";
            case 'I' -> "INT"; case 'L' -> "LONG"; case 'S' -> "STRING"; case 'V' -> "UNICODE"; case 'F' -> "FLOAT";
            case 0x8b -> "LONG4"; case 0x8f -> "EMPTY_SET"; case 0x90 -> "ADDITEMS"; case 0x91 -> "FROZENSET";
            case 0x96 -> "BYTEARRAY8"; case 0x97 -> "NEXT_BUFFER"; case 0x98 -> "READONLY_BUFFER";
            default -> null;
        };
        String hex = String.format("0x%02x", op);
        return name != null ? name + " (" + hex + ")" : hex;
    }

    private Object longValue(byte[] le) {
        if (le.length == 0) return 0L;
        byte[] be = new byte[le.length];
        for (int i = 0; i < le.length; i++) be[i] = le[le.length - 1 - i];
        BigInteger b = new BigInteger(be);
        return b.bitLength() < 64 ? (Object) b.longValue() : b;
    }

    private Object pop(List<Object> stack) {
        if (stack.isEmpty()) throw bad("stack underflow");
        Object o = stack.remove(stack.size() - 1);
        if (o == MARK) throw bad("unexpected MARK");
        return o;
    }

    private Object peek(List<Object> stack) {
        if (stack.isEmpty() || stack.get(stack.size() - 1) == MARK) throw bad("stack underflow");
        return stack.get(stack.size() - 1);
    }

    private List<Object> popMark(List<Object> stack, List<Integer> marks) {
        if (marks.isEmpty()) throw bad("no MARK on the stack");
        int m = marks.remove(marks.size() - 1);
        List<Object> items = new ArrayList<>(stack.subList(m + 1, stack.size()));
        stack.subList(m, stack.size()).clear();
        return items;
    }

    @SuppressWarnings("unchecked")
    private List<Object> asList(Object o) {
        if (!(o instanceof List)) throw bad("APPEND to something that is not a list");
        return (List<Object>) o;
    }

    @SuppressWarnings("unchecked")
    private Map<Object, Object> asMap(Object o) {
        if (!(o instanceof Map)) throw bad("SETITEM on something that is not a dict");
        return (Map<Object, Object>) o;
    }

    private void putAll(Map<Object, Object> m, List<Object> items) {
        if (items.size() % 2 != 0) throw bad("odd number of items for a dict");
        for (int i = 0; i < items.size(); i += 2) put(m, items.get(i), items.get(i + 1));
    }

    private void put(Map<Object, Object> m, Object k, Object v) {
        // Keys of a state dict are strings; anything unhashable in Python (list, dict) cannot be a key.
        if (k instanceof List || k instanceof Map) throw bad("unhashable dict key");
        m.put(k, v);
    }

    private void memo(Map<Long, Object> memo, long idx, Object v) {
        if (idx < 0 || memo.size() >= MAX_MEMO) throw bad("memo too large");
        memo.put(idx, v);
    }

    private Object recall(Map<Long, Object> memo, long idx) {
        if (!memo.containsKey(idx)) throw bad("memo entry " + idx + " was never stored");
        return memo.get(idx);
    }

    private Object global(String module, String name) {
        switch (module + "." + name) {
            case "collections.OrderedDict": return Callable.ORDERED_DICT;
            case "torch._utils._rebuild_tensor_v2": return Callable.REBUILD_TENSOR_V2;
            case "torch._utils._rebuild_tensor": return Callable.REBUILD_TENSOR;
            case "torch._utils._rebuild_parameter": return Callable.REBUILD_PARAMETER;
            default: break;
        }
        if (module.equals("torch") && STORAGES.containsKey(name)) return STORAGES.get(name);
        throw bad("global '" + printable(module) + "." + printable(name) + "' is not one PyTorch writes for "
                + "tensors; refusing (nshap never executes pickles)");
    }

    private static String printable(String s) {
        StringBuilder b = new StringBuilder();
        for (char ch : s.toCharArray()) b.append(ch >= 0x20 && ch < 0x7F ? ch : '?');
        return b.length() > 80 ? b.substring(0, 80) + "..." : b.toString();
    }

    private Object reduce(Object fn, Object argsObj) {
        if (!(fn instanceof Callable c)) throw bad("REDUCE applied to " + describe(fn) + ", which is not callable here");
        if (!(argsObj instanceof Tuple args)) throw bad("REDUCE arguments are not a tuple");
        switch (c) {
            case ORDERED_DICT -> {
                if (args.size() != 0) throw bad("OrderedDict called with arguments");
                return new LinkedHashMap<>();
            }
            case REBUILD_TENSOR_V2, REBUILD_TENSOR -> {
                // v2: (storage, offset, size, stride, requires_grad, backward_hooks[, metadata]); v1: the first four
                int n = args.size();
                boolean ok = c == Callable.REBUILD_TENSOR ? n == 4 : n == 6 || n == 7;
                if (!ok) throw bad("_rebuild_tensor with " + n + " arguments");
                if (!(args.get(0) instanceof StorageRef s)) throw bad("tensor storage is not a persistent storage");
                long off = asLong(args.get(1), "storage offset");
                long[] size = longs(args.get(2), "size");
                long[] stride = longs(args.get(3), "stride");
                if (size.length != stride.length) throw bad("tensor size and stride have different ranks");
                return new TensorRef(s, off, size, stride);
            }
            case REBUILD_PARAMETER -> {
                if (args.size() != 3 || !(args.get(0) instanceof TensorRef t)) throw bad("_rebuild_parameter without a tensor");
                return t;
            }
        }
        throw new IllegalStateException();
    }

    private void build(Object target, Object state) {
        // OrderedDict state dicts carry `_metadata` (per-module versions) as instance state: not needed.
        if (target instanceof Map && (state instanceof Map || state == NONE)) return;
        throw bad("BUILD on " + describe(target) + " is not allowed");
    }

    private long asLong(Object o, String what) {
        if (!(o instanceof Long l)) throw bad(what + " is not an integer");
        return l;
    }

    private long[] longs(Object o, String what) {
        if (!(o instanceof Tuple t)) throw bad("tensor " + what + " is not a tuple");
        if (t.size() > 8) throw bad("tensor " + what + " has " + t.size() + " dimensions");
        long[] r = new long[t.size()];
        for (int i = 0; i < r.length; i++) r[i] = asLong(t.get(i), "tensor " + what);
        return r;
    }

    private static String describe(Object o) {
        if (o == null || o == NONE) return "None";
        if (o instanceof StorageType t) return "torch." + t.name;
        return o.getClass().getSimpleName();
    }
}
