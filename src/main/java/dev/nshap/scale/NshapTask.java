package dev.nshap.scale;

import com.hazelcast.core.HazelcastInstance;
import com.hazelcast.core.HazelcastInstanceAware;
import com.hazelcast.nio.ObjectDataInput;
import com.hazelcast.nio.ObjectDataOutput;
import com.hazelcast.nio.serialization.IdentifiedDataSerializable;
import dev.nshap.shapley.Coalition;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.List;
import java.util.concurrent.Callable;

/**
 * The only task type an nshap member runs: a signed message (prepare a game, or evaluate coalitions of it) whose
 * answer is a signed byte array. The body is nshap's own encoding, and the HMAC covers kind and body, so a member
 * checks the signature before it decodes anything.
 */
public final class NshapTask implements Callable<byte[]>, IdentifiedDataSerializable, HazelcastInstanceAware {
    static final int CLASS_ID = 1;
    static final byte PREPARE = 1, EVALUATE = 2;
    static final int MAC_BYTES = 32;

    byte kind;
    byte[] body, mac;
    private transient HazelcastInstance hz;

    public NshapTask() { }

    NshapTask(byte kind, byte[] body, Secret secret) {
        this.kind = kind;
        this.body = body;
        this.mac = secret.mac(signed(kind, body));
    }

    static byte[] signed(byte kind, byte[] body) {
        byte[] m = new byte[body.length + 1];
        m[0] = kind;
        System.arraycopy(body, 0, m, 1, body.length);
        return m;
    }

    @Override public void setHazelcastInstance(HazelcastInstance hz) { this.hz = hz; }

    @Override public byte[] call() {
        Object w = hz == null ? null : hz.getUserContext().get(Members.WORKER_KEY);
        if (!(w instanceof Worker worker)) return Reply.unsigned(-1, "this member is not an nshap worker");
        return worker.handle(this);
    }

    @Override public int getFactoryId() { return Members.FACTORY_ID; }
    @Override public int getClassId() { return CLASS_ID; }

    @Override public void writeData(ObjectDataOutput out) throws IOException {
        out.writeByte(kind);
        out.writeByteArray(body);
        out.writeByteArray(mac);
    }

    @Override public void readData(ObjectDataInput in) throws IOException {
        kind = in.readByte();
        body = in.readByteArray();
        mac = in.readByteArray();
    }

    // ---------------------------------------------------------------- bodies

    static byte[] prepareBody(long taskId, byte[] spec) {
        return write(o -> {
            o.writeLong(taskId);
            o.writeInt(spec.length);
            o.write(spec);
        });
    }

    /** Coalitions as (unit, seed, members as 64-bit words), after the game's id and the player count. */
    static byte[] evaluateBody(long taskId, String specId, int players, List<Coalition> cs) {
        int words = (players + 63) / 64;
        return write(o -> {
            o.writeLong(taskId);
            o.writeUTF(specId);
            o.writeInt(players);
            o.writeInt(cs.size());
            for (Coalition c : cs) {
                o.writeLong(c.unit());
                o.writeLong(c.seed());
                long[] w = Arrays.copyOf(c.members().toLongArray(), words);
                for (long x : w) o.writeLong(x);
            }
        });
    }

    record Prepare(long taskId, byte[] spec) { }

    record Evaluate(long taskId, String specId, int players, List<Coalition> coalitions) { }

    static Prepare readPrepare(byte[] body) {
        return read(body, in -> {
            long id = in.readLong();
            byte[] spec = new byte[in.readInt()];
            in.readFully(spec);
            return new Prepare(id, spec);
        });
    }

    static Evaluate readEvaluate(byte[] body) {
        return read(body, in -> {
            long id = in.readLong();
            String spec = in.readUTF();
            int players = in.readInt(), count = in.readInt(), words = (players + 63) / 64;
            if (players < 1 || count < 0 || (long) count * (16 + 8L * words) > body.length)
                throw new IOException("malformed evaluate task");
            List<Coalition> cs = new ArrayList<>(count);
            long[] w = new long[words];
            for (int i = 0; i < count; i++) {
                long unit = in.readLong(), seed = in.readLong();
                for (int j = 0; j < words; j++) w[j] = in.readLong();
                BitSet b = BitSet.valueOf(w);
                if (b.length() > players) throw new IOException("coalition names a player beyond " + players);
                cs.add(new Coalition(b, unit, seed));
            }
            return new Evaluate(id, spec, players, cs);
        });
    }

    // ---------------------------------------------------------------- replies

    /** A worker's answer: status, task id, values or a one-line reason, then the HMAC of all that. */
    record Reply(long taskId, double[] values, String refusal) {
        static byte[] ok(long taskId, double[] values, Secret s) {
            return sign(write(o -> {
                o.writeByte(0);
                o.writeLong(taskId);
                o.writeInt(values.length);
                for (double v : values) o.writeDouble(v);
            }), s);
        }

        static byte[] refused(long taskId, String why, Secret s) {
            return sign(refusalBytes(taskId, why), s);
        }

        /** For a member that holds no secret to sign with; the driver reports it as unsigned. */
        static byte[] unsigned(long taskId, String why) {
            byte[] b = refusalBytes(taskId, why);
            return Arrays.copyOf(b, b.length + MAC_BYTES);
        }

        private static byte[] refusalBytes(long taskId, String why) {
            return write(o -> {
                o.writeByte(1);
                o.writeLong(taskId);
                o.writeUTF(why.length() > 2000 ? why.substring(0, 2000) : why);
            });
        }

        private static byte[] sign(byte[] b, Secret s) {
            byte[] out = Arrays.copyOf(b, b.length + MAC_BYTES);
            System.arraycopy(s.mac(b), 0, out, b.length, MAC_BYTES);
            return out;
        }

        /** Decodes a reply; null when its signature is not this cluster's. */
        static Reply parse(byte[] r, Secret s) {
            if (r == null || r.length < MAC_BYTES + 9) return null;
            byte[] msg = Arrays.copyOf(r, r.length - MAC_BYTES);
            if (!s.verify(msg, Arrays.copyOfRange(r, r.length - MAC_BYTES, r.length))) return null;
            return read(msg, in -> {
                byte status = in.readByte();
                long id = in.readLong();
                if (status != 0) return new Reply(id, null, in.readUTF());
                double[] v = new double[in.readInt()];
                for (int i = 0; i < v.length; i++) v[i] = in.readDouble();
                return new Reply(id, v, null);
            });
        }
    }

    // ---------------------------------------------------------------- plumbing

    interface Writer { void write(DataOutputStream o) throws IOException; }

    interface Reader<T> { T read(DataInputStream in) throws IOException; }

    static byte[] write(Writer w) {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        try (DataOutputStream o = new DataOutputStream(b)) {
            w.write(o);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return b.toByteArray();
    }

    static <T> T read(byte[] bytes, Reader<T> r) {
        try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(bytes))) {
            return r.read(in);
        } catch (IOException e) {
            throw new IllegalArgumentException("malformed nshap message: " + e.getMessage());
        }
    }

    static String utf8(byte[] b) { return new String(b, StandardCharsets.UTF_8); }
}
