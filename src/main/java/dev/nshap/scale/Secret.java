package dev.nshap.scale;

import dev.nshap.NshapException;

import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.util.HexFormat;

/**
 * The shared cluster secret. Hazelcast's open-source edition authenticates nothing, so nshap does it itself: the
 * cluster name members must present to join is derived from the secret (a member with another secret is turned
 * away at the join), and every task and every reply carries an HMAC-SHA256 of its bytes under the secret (a member
 * that joined with the name alone can neither run nor answer a task). Traffic is not encrypted.
 */
public final class Secret {
    public static final String ENV = "NSHAP_CLUSTER_SECRET";

    private final byte[] key;

    private Secret(byte[] key) { this.key = key; }

    /** From --cluster-secret, else the environment; null when neither is set. */
    public static Secret from(String option) {
        String s = option != null ? option : System.getenv(ENV);
        if (s == null || s.isEmpty()) return null;
        if (s.length() < 8) throw new NshapException("the cluster secret must have at least 8 characters");
        return new Secret(s.getBytes(StandardCharsets.UTF_8));
    }

    public static Secret require(String option) {
        Secret s = from(option);
        if (s == null) throw new NshapException("no cluster secret: pass --cluster-secret or set " + ENV);
        return s;
    }

    /** A fresh random secret, for members started inside this process only. */
    public static Secret random() {
        byte[] k = new byte[32];
        new SecureRandom().nextBytes(k);
        return new Secret(k);
    }

    /** The Hazelcast cluster name: a hash of the secret, so joining requires knowing it. */
    public String clusterName() {
        return "nshap-" + HexFormat.of().formatHex(mac("nshap cluster name".getBytes(StandardCharsets.UTF_8))).substring(0, 24);
    }

    public byte[] mac(byte[] message) {
        try {
            Mac m = Mac.getInstance("HmacSHA256");
            m.init(new SecretKeySpec(key, "HmacSHA256"));
            return m.doFinal(message);
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException(e);
        }
    }

    public boolean verify(byte[] message, byte[] tag) {
        return tag != null && MessageDigest.isEqual(mac(message), tag);
    }
}
