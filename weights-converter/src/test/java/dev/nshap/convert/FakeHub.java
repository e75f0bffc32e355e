package dev.nshap.convert;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;

import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A loopback stand-in for the Hugging Face hub, bound to 127.0.0.1 on a free port. It answers
 * {@code /REPO/resolve/REV/FILE} the way the hub does: small files directly with their git blob id as ETag, LFS files
 * (*.safetensors, *.bin) with a 302 to {@code /cdn/SHA256} carrying X-Linked-Etag / X-Linked-Size / X-Repo-Commit.
 * The CDN honours {@code Range: bytes=N-}. Faults on demand: cut the body after half the bytes, corrupt a byte.
 */
final class FakeHub implements AutoCloseable {
    static final String COMMIT = "0123456789abcdef0123456789abcdef01234567";

    final HttpServer server;
    final Map<String, Map<String, byte[]>> repos = new ConcurrentHashMap<>();
    final Map<String, String> renamed = new ConcurrentHashMap<>();
    final Map<String, byte[]> cdn = new ConcurrentHashMap<>();
    final List<String> log = Collections.synchronizedList(new ArrayList<>());
    volatile int cutsLeft = 0;
    volatile boolean corrupt = false;
    /** CDN bodies: this many stall after half the bytes (for {@link #stallMs}) instead of finishing. */
    volatile int stallsLeft = 0;
    volatile long stallMs = 0;
    /** Small files are sent chunked, with no Content-Length, and this many extra bytes of padding after the content. */
    volatile long undeclaredPadding = -1;
    /** Where LFS redirects point: "" for this server, or another server's origin (a CDN on another host). */
    volatile String cdnOrigin = "";

    FakeHub() throws IOException {
        server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        server.createContext("/", this::handle);
        // one thread per exchange: a stalled response must not hold up the client's retry
        server.setExecutor(java.util.concurrent.Executors.newCachedThreadPool(r -> {
            Thread t = new Thread(r, "fake-hub");
            t.setDaemon(true);
            return t;
        }));
        server.start();
    }

    String endpoint() { return "http://127.0.0.1:" + server.getAddress().getPort(); }

    void put(String repo, String file, byte[] content) {
        repos.computeIfAbsent(repo, k -> new ConcurrentHashMap<>()).put(file, content);
        cdn.put(sha256(content), content);
    }

    static String sha256(byte[] b) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(b));
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    static String gitBlobId(byte[] b) {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-1");
            md.update(("blob " + b.length + "\0").getBytes(StandardCharsets.US_ASCII));
            return HexFormat.of().formatHex(md.digest(b));
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    private static boolean isLfs(String file) {
        return file.endsWith(".safetensors") || file.endsWith(".bin");
    }

    private void handle(HttpExchange ex) throws IOException {
        String path = ex.getRequestURI().getRawPath();
        String range = ex.getRequestHeaders().getFirst("Range");
        String auth = ex.getRequestHeaders().getFirst("Authorization");
        log.add(ex.getRequestMethod() + " " + path + (range != null ? " " + range : "") + (auth != null ? " [" + auth + "]" : ""));
        boolean head = ex.getRequestMethod().equals("HEAD");
        try (ex) {
            if (path.startsWith("/cdn/")) {
                serveCdn(ex, path.substring(5), range, head);
                return;
            }
            int r = path.indexOf("/resolve/");
            if (r < 0) { ex.sendResponseHeaders(404, -1); return; }
            String repo = path.substring(1, r);
            String rest = path.substring(r + "/resolve/".length());
            int slash = rest.indexOf('/');
            String rev = rest.substring(0, slash), file = rest.substring(slash + 1);
            if (renamed.containsKey(repo)) {
                ex.getResponseHeaders().set("Location", "/" + renamed.get(repo) + "/resolve/" + rev + "/" + file);
                ex.sendResponseHeaders(302, -1);
                return;
            }
            Map<String, byte[]> files = repos.get(repo);
            if (files == null) { error(ex, "RepositoryNotFound"); return; }
            if (!rev.equals("main") && !rev.equals(COMMIT)) { error(ex, "RevisionNotFound"); return; }
            byte[] content = files.get(file);
            if (content == null) { error(ex, "EntryNotFound"); return; }
            ex.getResponseHeaders().set("X-Repo-Commit", COMMIT);
            if (isLfs(file)) {
                String sha = sha256(content);
                ex.getResponseHeaders().set("X-Linked-Etag", "\"" + sha + "\"");
                ex.getResponseHeaders().set("X-Linked-Size", String.valueOf(content.length));
                ex.getResponseHeaders().set("ETag", "\"" + gitBlobId(("version https://git-lfs.github.com/spec/v1\noid sha256:" + sha).getBytes(StandardCharsets.US_ASCII)) + "\"");
                ex.getResponseHeaders().set("Location", cdnOrigin + "/cdn/" + sha);
                ex.sendResponseHeaders(302, -1);
                return;
            }
            ex.getResponseHeaders().set("ETag", "\"" + gitBlobId(content) + "\"");
            if (head) { ex.sendResponseHeaders(200, -1); return; }
            if (undeclaredPadding >= 0) {            // chunked: the client learns no size
                ex.sendResponseHeaders(200, 0);
                OutputStream out = ex.getResponseBody();
                out.write(content);
                byte[] pad = new byte[1 << 16];
                java.util.Arrays.fill(pad, (byte) ' ');
                try {
                    for (long left = undeclaredPadding; left > 0; left -= pad.length) out.write(pad, 0, (int) Math.min(pad.length, left));
                } catch (IOException clientHungUp) {
                    return;
                }
                return;
            }
            ex.sendResponseHeaders(200, content.length);
            ex.getResponseBody().write(content);
        }
    }

    private static void error(HttpExchange ex, String code) throws IOException {
        ex.getResponseHeaders().set("X-Error-Code", code);
        ex.sendResponseHeaders(404, -1);
    }

    private void serveCdn(HttpExchange ex, String sha, String range, boolean head) throws IOException {
        byte[] content = cdn.get(sha);
        if (content == null) { ex.sendResponseHeaders(404, -1); return; }
        int from = 0;
        if (range != null && range.startsWith("bytes=") && range.endsWith("-"))
            from = Integer.parseInt(range.substring(6, range.length() - 1));
        if (from > content.length) { ex.sendResponseHeaders(416, -1); return; }
        byte[] body = java.util.Arrays.copyOfRange(content, from, content.length);
        if (corrupt && body.length > 10) body[body.length / 2] ^= 0x40;
        if (from > 0) ex.getResponseHeaders().set("Content-Range", "bytes " + from + "-" + (content.length - 1) + "/" + content.length);
        if (head) { ex.sendResponseHeaders(from > 0 ? 206 : 200, -1); return; }
        ex.sendResponseHeaders(from > 0 ? 206 : 200, body.length);
        OutputStream out = ex.getResponseBody();
        if (stallsLeft > 0) {
            stallsLeft--;
            out.write(body, 0, body.length / 2);
            out.flush();
            try { Thread.sleep(stallMs); } catch (InterruptedException e) { Thread.currentThread().interrupt(); }
            throw new IOException("stalled"); // then drop it, long after the client should have given up
        }
        if (cutsLeft > 0) {
            cutsLeft--;
            out.write(body, 0, body.length / 2);
            out.flush();
            throw new IOException("cut"); // drops the connection with the body half sent
        }
        out.write(body);
    }

    @Override public void close() {
        server.stop(0);
    }
}
