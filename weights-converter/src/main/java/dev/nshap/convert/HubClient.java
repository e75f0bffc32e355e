package dev.nshap.convert;

import dev.nshap.NshapException;
import dev.nshap.io.AtomicFiles;
import dev.nshap.model.Checkpoint;
import dev.nshap.util.Progress;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.ConnectException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpConnectTimeoutException;
import java.net.http.HttpHeaders;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * {@code nshap model pull}: fetches a GPT-2 repository from the Hugging Face hub (or a mirror at HF_ENDPOINT) into
 * the same cache layout huggingface_hub uses, so either tool reuses the other's downloads:
 * <pre>
 * $HF_HOME/hub/models--ORG--NAME/
 *   blobs/SHA256            LFS files, named by the SHA-256 the hub publishes (X-Linked-Etag)
 *   blobs/GITSHA1           small files, named by their git blob id (ETag)
 *   blobs/ETAG.incomplete   a partial download, resumed with a Range request
 *   refs/REVISION           the commit a branch or tag resolved to
 *   snapshots/COMMIT/FILE   relative symlinks into blobs/ (copies where links are not possible)
 *   converted/COMMIT/       nshap's layout for repositories without a single model.safetensors
 * </pre>
 * Every file is checked against the hub's hash before it enters blobs/; a mismatch deletes the download.
 */
public final class HubClient {
    public static final String DEFAULT_ENDPOINT = "https://huggingface.co";
    private static final Pattern REPO = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?");
    private static final Pattern REVISION = Pattern.compile("[A-Za-z0-9._/-]{1,200}");
    private static final Pattern COMMIT = Pattern.compile("[0-9a-f]{40}");
    private static final Pattern SHA256 = Pattern.compile("[0-9a-f]{64}");
    private static final int MAX_REDIRECTS = 10;

    /** Short names researchers type, mapped to the repositories the hub now keeps them under. */
    public static final Map<String, String> ALIASES = Map.of(
            "gpt2", "openai-community/gpt2", "gpt2-medium", "openai-community/gpt2-medium",
            "gpt2-large", "openai-community/gpt2-large", "gpt2-xl", "openai-community/gpt2-xl",
            "distilgpt2", "distilbert/distilgpt2");

    private final URI endpoint;
    private final String token;
    private final Path cache;
    private final HttpClient http;
    int attempts = 3;
    /** A download that delivers no byte for this long is cut and resumed (the request timeout stops at the headers). */
    Duration readTimeout = Duration.ofSeconds(60);

    /**
     * The most bytes a file of each kind may have, declared or not: a server that sends no size (or a huge one) for
     * a config.json must not fill the disk. Weights are capped above GPT-2 xl's 6.4 GB in f32 with room to spare.
     */
    static long maxBytes(String file) {
        if (file.equals(Checkpoint.CONFIG) || file.endsWith(".index.json")) return 16L << 20;
        if (file.equals("vocab.json") || file.equals("merges.txt")) return 64L << 20;
        return 64L << 30;
    }

    public HubClient(URI endpoint, String token, Path hubCache) {
        String e = endpoint.toString();
        this.endpoint = URI.create(e.endsWith("/") ? e.substring(0, e.length() - 1) : e);
        if (this.endpoint.getScheme() == null || this.endpoint.getHost() == null
                || !(this.endpoint.getScheme().equals("http") || this.endpoint.getScheme().equals("https")))
            throw new NshapException("hub endpoint '" + endpoint + "' is not an http(s) URL");
        this.token = token == null || token.isBlank() ? null : token.trim();
        this.cache = hubCache;
        this.http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
                .followRedirects(HttpClient.Redirect.NEVER).connectTimeout(Duration.ofSeconds(15)).build();
    }

    /** Endpoint, token and cache from HF_ENDPOINT, HF_TOKEN (or $HF_HOME/token), HF_HUB_CACHE / HF_HOME. */
    public static HubClient fromEnvironment(String endpointOverride, Path cacheOverride) {
        Map<String, String> env = System.getenv();
        String ep = endpointOverride != null ? endpointOverride : env.getOrDefault("HF_ENDPOINT", DEFAULT_ENDPOINT);
        Path home = env.containsKey("HF_HOME") ? Path.of(env.get("HF_HOME"))
                : Path.of(System.getProperty("user.home"), ".cache", "huggingface");
        Path hub = cacheOverride != null ? cacheOverride
                : env.containsKey("HF_HUB_CACHE") ? Path.of(env.get("HF_HUB_CACHE")) : home.resolve("hub");
        String token = env.get("HF_TOKEN");
        if (token == null) token = env.get("HUGGING_FACE_HUB_TOKEN");
        if (token == null && Files.isRegularFile(home.resolve("token"))) {
            try { token = Files.readString(home.resolve("token")).trim(); } catch (IOException ignored) { }
        }
        URI uri;
        try {
            uri = URI.create(ep);
        } catch (IllegalArgumentException e) {
            throw new NshapException("HF_ENDPOINT '" + ep + "' is not a URL");
        }
        return new HubClient(uri, token, hub);
    }

    public record Pulled(Path dir, String repo, String commit, boolean converted) {}

    /** What a HEAD on resolve/REV/FILE told us. */
    record FileMeta(String file, String etag, long size, String commit, URI download) {
        boolean lfs() { return SHA256.matcher(etag).matches(); }
    }

    public static String repoId(String name) {
        String repo = ALIASES.getOrDefault(name, name);
        if (!REPO.matcher(repo).matches() || repo.contains(".."))
            throw new NshapException("'" + name + "' is not a model name (gpt2, gpt2-medium, gpt2-large, gpt2-xl, distilgpt2 or ORG/NAME)");
        return repo;
    }

    public Path repoDir(String repo) {
        return cache.resolve("models--" + repo.replace("/", "--"));
    }

    public Pulled pull(String name, String revision) {
        String repo = repoId(name);
        String rev = revision == null ? "main" : revision;
        if (!REVISION.matcher(rev).matches() || rev.contains(".."))
            throw new NshapException("revision '" + rev + "' is not a branch, tag or commit name");
        Path repoDir = repoDir(repo);
        FileMeta cfg;
        try {
            cfg = head(repo, rev, Checkpoint.CONFIG);
        } catch (Offline e) {
            Pulled cached = cached(repo, rev);
            if (cached == null) throw new NshapException(e.getMessage() + "; and no verified copy of " + repo + "@" + rev + " is in the cache " + cache);
            System.err.println("nshap: " + e.getMessage() + "; using the cached " + repo + "@" + rev + " (" + cached.commit() + ")");
            return cached;
        }
        if (cfg == null)
            throw new NshapException(repo + "@" + rev + ": config.json not found on " + endpoint + " (HTTP 404): no such "
                    + "repository or revision, or not a transformers model");
        String commit = cfg.commit != null ? cfg.commit : rev;
        String pin = COMMIT.matcher(commit).matches() ? commit : rev;
        Path snap = repoDir.resolve("snapshots").resolve(commit.replace('/', '_'));
        fetch(repoDir, snap, cfg);
        for (String tok : new String[]{"vocab.json", "merges.txt"}) {
            FileMeta m = head(repo, pin, tok);
            if (m != null) fetch(repoDir, snap, m);
        }
        List<String> weights = new ArrayList<>();
        String single = null;
        FileMeta st = head(repo, pin, Checkpoint.WEIGHTS);
        if (st != null) {
            fetch(repoDir, snap, st);
            single = Checkpoint.WEIGHTS;
        } else {
            String index = null;
            for (String f : new String[]{"model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"}) {
                FileMeta m = head(repo, pin, f);
                if (m == null) continue;
                fetch(repoDir, snap, m);
                index = f;
                break;
            }
            if (index == null)
                throw new NshapException(repo + "@" + rev + ": no model.safetensors, model.safetensors.index.json, "
                        + "pytorch_model.bin or pytorch_model.bin.index.json in the repository");
            weights.add(index);
            if (index.endsWith(".index.json"))
                for (String shard : ShardedCheckpoint.shards(snap.resolve(index)).keySet()) {
                    FileMeta m = head(repo, pin, shard);
                    if (m == null) throw new NshapException(repo + "@" + rev + ": shard " + shard + " listed in " + index + " is missing (HTTP 404)");
                    fetch(repoDir, snap, m);
                }
        }
        if (!commit.equals(rev)) AtomicFiles.writeString(repoDir.resolve("refs").resolve(rev), commit);
        if (single != null) {
            Checkpoint.inspect(snap); // a pulled model must load: check it now rather than at first use
            List<String> files = new ArrayList<>(List.of(Checkpoint.CONFIG, Checkpoint.WEIGHTS));
            for (String tok : new String[]{"vocab.json", "merges.txt"}) if (Files.exists(snap.resolve(tok))) files.add(tok);
            if (!Files.isRegularFile(snap.resolve(Manifest.FILE))) Manifest.write(snap, files, Map.of("repo", repo, "commit", commit));
            return new Pulled(snap, repo, commit, false);
        }
        Path out = repoDir.resolve("converted").resolve(commit.replace('/', '_'));
        if (Files.isRegularFile(out.resolve(Manifest.FILE))) {
            try {
                Manifest.verify(out);
                return new Pulled(out, repo, commit, true);
            } catch (NshapException stale) {
                System.err.println("nshap: cached conversion " + out + " is damaged (" + stale.getMessage() + "); converting again");
            }
        }
        Path src = weights.get(0).endsWith(".index.json") ? snap.resolve(weights.get(0)) : snap;
        Converter.convert(src, out, null, true);
        return new Pulled(out, repo, commit, true);
    }

    /** A complete, manifest-verified copy of repo@rev already in the cache, or null. */
    Pulled cached(String repo, String rev) {
        Path repoDir = repoDir(repo);
        String commit = rev;
        Path ref = repoDir.resolve("refs").resolve(rev);
        if (!COMMIT.matcher(rev).matches()) {
            if (!Files.isRegularFile(ref)) return null;
            try {
                commit = Files.readString(ref).trim();
            } catch (IOException e) {
                return null;
            }
            if (!COMMIT.matcher(commit).matches()) return null;
        }
        for (Path dir : new Path[]{repoDir.resolve("converted").resolve(commit), repoDir.resolve("snapshots").resolve(commit)}) {
            if (!Files.isRegularFile(dir.resolve(Manifest.FILE)) || !Files.isRegularFile(dir.resolve(Checkpoint.WEIGHTS))) continue;
            try {
                Manifest.verify(dir);
                return new Pulled(dir, repo, commit, dir.getParent().getFileName().toString().equals("converted"));
            } catch (NshapException damaged) {
                return null;
            }
        }
        return null;
    }

    /** The hub could not be reached at all (as opposed to answering with an error). */
    static final class Offline extends NshapException {
        Offline(String message) { super(message); }
    }

    // ------------------------------------------------------------------ HTTP

    private URI resolveUri(String repo, String rev, String file) {
        String r = URLEncoder.encode(rev, StandardCharsets.UTF_8);
        return URI.create(endpoint + "/" + repo + "/resolve/" + r + "/" + file);
    }

    private boolean sameOrigin(URI u) {
        return u.getScheme().equals(endpoint.getScheme()) && u.getHost().equalsIgnoreCase(endpoint.getHost())
                && u.getPort() == endpoint.getPort();
    }

    private HttpRequest.Builder request(URI u) {
        HttpRequest.Builder b = HttpRequest.newBuilder(u).header("User-Agent", "nshap/0.1").header("Accept-Encoding", "identity");
        // The token is for the hub only: never hand it to a CDN or another host a redirect points at.
        if (token != null && sameOrigin(u)) b.header("Authorization", "Bearer " + token);
        return b;
    }

    private <T> HttpResponse<T> send(HttpRequest req, HttpResponse.BodyHandler<T> body) {
        try {
            return http.send(req, body);
        } catch (ConnectException | HttpConnectTimeoutException e) {
            throw offline(e);
        } catch (IOException e) {
            if (e.getCause() instanceof java.nio.channels.UnresolvedAddressException) throw offline(e);
            throw new NshapException("request to " + req.uri() + " failed: " + e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new NshapException("interrupted");
        }
    }

    private NshapException offline(Exception e) {
        return new Offline("cannot reach the Hugging Face hub at " + endpoint + " (offline, or HF_ENDPOINT wrong?): "
                + (e.getMessage() != null ? e.getMessage() : e.getClass().getSimpleName()));
    }

    /** HEAD resolve/REV/FILE without following the hub's redirect to its CDN; null on 404. */
    FileMeta head(String repo, String rev, String file) {
        URI u = resolveUri(repo, rev, file);
        for (int hop = 0; hop <= MAX_REDIRECTS; hop++) {
            HttpResponse<Void> r = send(request(u).method("HEAD", HttpRequest.BodyPublishers.noBody())
                    .timeout(Duration.ofSeconds(60)).build(), HttpResponse.BodyHandlers.discarding());
            int s = r.statusCode();
            HttpHeaders h = r.headers();
            Optional<String> linked = h.firstValue("X-Linked-Etag");
            if (s >= 300 && s < 400) {
                URI next = location(u, h);
                if (linked.isPresent()) return meta(file, h, linked.get(), next);
                u = next; // a renamed repository: ask again where it lives now
                continue;
            }
            if (s == 404) {
                String code = h.firstValue("X-Error-Code").orElse("");
                if (code.equals("RepositoryNotFound")) throw new NshapException(repo + ": repository not found on " + endpoint);
                if (code.equals("RevisionNotFound")) throw new NshapException(repo + ": revision '" + rev + "' not found");
                return null;
            }
            if (s == 401 || s == 403) {
                String code = h.firstValue("X-Error-Code").orElse("");
                if (code.equals("RepositoryNotFound"))
                    throw new NshapException(repo + ": repository not found on " + endpoint + " (or private: set HF_TOKEN)");
                throw new NshapException(repo + ": access denied to " + file + " (HTTP " + s + "): gated or private; set HF_TOKEN");
            }
            if (s != 200) throw new NshapException(repo + ": HEAD " + file + " answered HTTP " + s);
            String etag = linked.orElse(h.firstValue("ETag").orElse(null));
            if (etag == null) throw new NshapException(repo + ": the hub sent no ETag for " + file + ", so it cannot be verified");
            return meta(file, h, etag, u);
        }
        throw new NshapException(repo + ": more than " + MAX_REDIRECTS + " redirects for " + file);
    }

    private static URI location(URI base, HttpHeaders h) {
        String loc = h.firstValue("Location").orElseThrow(() -> new NshapException(base + ": redirect without a Location"));
        try {
            return base.resolve(loc);
        } catch (IllegalArgumentException e) {
            throw new NshapException(base + ": redirect to a malformed Location '" + loc + "'");
        }
    }

    private FileMeta meta(String file, HttpHeaders h, String rawEtag, URI download) {
        String etag = rawEtag.trim();
        if (etag.startsWith("W/")) etag = etag.substring(2);
        etag = etag.replace("\"", "").toLowerCase(java.util.Locale.ROOT);
        if (!SHA256.matcher(etag).matches() && !COMMIT.matcher(etag).matches())
            throw new NshapException(file + ": the hub's ETag '" + rawEtag + "' is neither a SHA-256 nor a git object id");
        long size = h.firstValue("X-Linked-Size").or(() -> h.firstValue("Content-Length")).map(v -> {
            try { return Long.parseLong(v.trim()); } catch (NumberFormatException e) { return -1L; }
        }).orElse(-1L);
        String commit = h.firstValue("X-Repo-Commit").map(String::trim).filter(c -> COMMIT.matcher(c).matches()).orElse(null);
        return new FileMeta(file, etag, size, commit, download);
    }

    /** Downloads into blobs/ unless already there, then links snapshots/COMMIT/FILE to it. */
    private void fetch(Path repoDir, Path snap, FileMeta m) {
        Path blob = repoDir.resolve("blobs").resolve(m.etag);
        // A blob is named by its hash and only enters blobs/ verified; a wrong size means someone truncated it.
        if (!Files.isRegularFile(blob) || (m.size >= 0 && sizeOf(blob) != m.size)) download(m, blob);
        link(snap.resolve(m.file), blob);
    }

    private static long sizeOf(Path f) {
        try {
            return Files.size(f);
        } catch (IOException e) {
            return -1;
        }
    }

    private void download(FileMeta m, Path blob) {
        if (m.size > maxBytes(m.file))
            throw new NshapException(m.file + ": the hub announces " + m.size + " bytes, more than any " + m.file + " of a GPT-2"
                    + " checkpoint (at most " + maxBytes(m.file) + "); refusing to download it");
        Path part = blob.resolveSibling(m.etag + ".incomplete");
        // two pulls appending to one partial file would corrupt it: the second waits its turn by being refused
        try (dev.nshap.io.OutputLock lock = dev.nshap.io.OutputLock.acquire(part)) {
            Files.createDirectories(blob.getParent());
            if (Files.isRegularFile(blob) && (m.size < 0 || sizeOf(blob) == m.size)) return;  // the other run finished it
            String lastError = null;
            for (int attempt = 1; attempt <= attempts; attempt++) {
                long have = Files.exists(part) ? Files.size(part) : 0;
                if (m.size >= 0 && have > m.size) { Files.delete(part); have = 0; }
                if (m.size >= 0 && have == m.size) break;
                try {
                    if (transfer(m, part, have)) break;
                    lastError = "connection closed early";
                } catch (IOException e) {
                    lastError = e.getMessage() != null ? e.getMessage() : e.getClass().getSimpleName();
                }
                long now = Files.exists(part) ? Files.size(part) : 0;
                System.err.println("nshap: download of " + m.file + " interrupted at " + now + " bytes (" + lastError + ")"
                        + (attempt < attempts ? "; resuming" : ""));
            }
            long got = Files.exists(part) ? Files.size(part) : 0;
            if (m.size >= 0 && got != m.size)
                throw new NshapException(m.file + ": download interrupted (" + got + " of " + m.size + " bytes after "
                        + attempts + " attempts: " + lastError + "); run the same command again to resume");
            String actual = m.lfs() ? sha256(part) : gitBlobSha1(part);
            if (!actual.equals(m.etag)) {
                Files.deleteIfExists(part);
                throw new NshapException(m.file + ": checksum mismatch: the hub publishes " + (m.lfs() ? "SHA-256 " : "git id ")
                        + m.etag + " but the download hashes to " + actual + "; corrupt transfer deleted, run again");
            }
            try {
                Files.move(part, blob, StandardCopyOption.ATOMIC_MOVE);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(part, blob);
            }
        } catch (IOException e) {
            throw new NshapException(m.file + ": cannot write into the cache " + blob.getParent() + ": " + e.getMessage());
        }
    }

    /** One GET (following redirects) appending to {@code part} from byte {@code have}; true when the body ended cleanly. */
    private boolean transfer(FileMeta m, Path part, long have) throws IOException {
        URI u = m.download;
        HttpResponse<InputStream> r = null;
        for (int hop = 0; hop <= MAX_REDIRECTS; hop++) {
            HttpRequest.Builder b = request(u).GET().timeout(Duration.ofSeconds(120));
            if (have > 0) b.header("Range", "bytes=" + have + "-");
            r = send(b.build(), HttpResponse.BodyHandlers.ofInputStream());
            int s = r.statusCode();
            if (s >= 300 && s < 400) {
                r.body().close();
                u = location(u, r.headers());
                r = null;
                continue;
            }
            break;
        }
        if (r == null) throw new NshapException(m.file + ": more than " + MAX_REDIRECTS + " redirects");
        int s = r.statusCode();
        boolean append;
        if (s == 206) {
            String cr = r.headers().firstValue("Content-Range").orElse("");
            Matcher cm = Pattern.compile("bytes (\\d+)-").matcher(cr);
            if (!cm.lookingAt() || Long.parseLong(cm.group(1)) != have) {
                r.body().close();
                Files.deleteIfExists(part); // the server resumed somewhere else: start over
                return false;
            }
            append = true;
        } else if (s == 200) {
            append = false; // the server ignored the Range: it sends everything again
            have = 0;
        } else if (s == 416 && have > 0) {
            r.body().close();
            Files.deleteIfExists(part);
            return false;
        } else {
            r.body().close();
            if (s == 404) throw new NshapException(m.file + ": not found at " + u + " (HTTP 404)");
            throw new NshapException(m.file + ": download answered HTTP " + s);
        }
        long total = m.size >= 0 ? m.size : r.headers().firstValueAsLong("Content-Length").orElse(-1) + have;
        long cap = maxBytes(m.file);
        if (total > cap) {
            r.body().close();
            throw new NshapException(m.file + ": the server sends " + total + " bytes, more than any " + m.file + " of a GPT-2"
                    + " checkpoint (at most " + cap + "); refusing it");
        }
        Progress p = new Progress("downloading " + m.file + " (kB)", Math.max(1, total / 1024));
        long done = have;
        try (InputStream in = r.body();
             OutputStream out = Files.newOutputStream(part, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                     append ? StandardOpenOption.APPEND : StandardOpenOption.TRUNCATE_EXISTING)) {
            byte[] buf = new byte[1 << 16];
            for (int n; (n = readWithin(in, buf, m.file)) > 0; ) {
                out.write(buf, 0, n);
                done += n;
                if (m.size >= 0 && done > m.size) throw new IOException("server sent more than the " + m.size + " bytes announced");
                if (done > cap) {
                    out.close();
                    Files.deleteIfExists(part);
                    throw new NshapException(m.file + ": the server sent more than " + cap + " bytes without declaring a size,"
                            + " more than any " + m.file + " of a GPT-2 checkpoint; download deleted");
                }
                p.update(done / 1024);
            }
        }
        return m.size < 0 || done == m.size;
    }

    private static final java.util.concurrent.ExecutorService READERS = java.util.concurrent.Executors.newCachedThreadPool(r -> {
        Thread t = new Thread(r, "nshap-hub-read");
        t.setDaemon(true);
        return t;
    });

    /**
     * One read that gives up after {@link #readTimeout} without a byte: a server that stalls mid-body would otherwise
     * block forever. The stalled read is abandoned on a daemon thread and its stream closed.
     */
    private int readWithin(InputStream in, byte[] buf, String file) throws IOException {
        java.util.concurrent.Future<Integer> f = READERS.submit(() -> in.read(buf));
        try {
            return f.get(readTimeout.toMillis(), java.util.concurrent.TimeUnit.MILLISECONDS);
        } catch (java.util.concurrent.TimeoutException e) {
            f.cancel(true);
            try { in.close(); } catch (IOException ignored) { }
            throw new IOException(String.format(java.util.Locale.ROOT, "no data for %.1f s: the server stalled", readTimeout.toMillis() / 1000.0));
        } catch (java.util.concurrent.ExecutionException e) {
            if (e.getCause() instanceof IOException io) throw io;
            throw new IOException(String.valueOf(e.getCause()), e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new NshapException(file + ": interrupted");
        }
    }

    /** snapshots/COMMIT/FILE -> ../../blobs/ETAG, replaced atomically; a copy where symlinks are not allowed. */
    private static void link(Path file, Path blob) {
        try {
            Files.createDirectories(file.getParent());
            Path rel = file.getParent().relativize(blob);
            if (Files.isSymbolicLink(file) && Files.readSymbolicLink(file).equals(rel)) return;
            Path tmp = file.resolveSibling("." + file.getFileName() + ".link");
            Files.deleteIfExists(tmp);
            try {
                Files.createSymbolicLink(tmp, rel);
            } catch (UnsupportedOperationException | IOException e) {
                Files.copy(blob, tmp, StandardCopyOption.REPLACE_EXISTING);
            }
            Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new NshapException(file + ": cannot link into the cache: " + e.getMessage());
        }
    }

    static String sha256(Path f) {
        return Checkpoint.sha256(f);
    }

    /** git's object id of a file: SHA-1 of "blob SIZE\0" + content (what the hub's ETag is for non-LFS files). */
    static String gitBlobSha1(Path f) {
        try (InputStream in = Files.newInputStream(f, LinkOption.NOFOLLOW_LINKS)) {
            MessageDigest md = MessageDigest.getInstance("SHA-1");
            md.update(("blob " + Files.size(f) + "\0").getBytes(StandardCharsets.US_ASCII));
            byte[] buf = new byte[1 << 16];
            for (int n; (n = in.read(buf)) > 0; ) md.update(buf, 0, n);
            return HexFormat.of().formatHex(md.digest());
        } catch (IOException e) {
            throw new NshapException(f + ": cannot read: " + e.getMessage());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
