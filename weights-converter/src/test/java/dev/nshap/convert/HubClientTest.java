package dev.nshap.convert;

import dev.nshap.NshapException;
import dev.nshap.io.Json;
import dev.nshap.model.Checkpoint;
import dev.nshap.model.GPT2Weights;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.net.ServerSocket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/** model pull against a loopback fake of the hub: never the real hub, never a non-loopback address. */
class HubClientTest {
    @TempDir Path tmp;
    FakeHub hub;
    GPT2Weights w;
    byte[] config, weights;

    @BeforeEach void setUp() throws Exception {
        hub = new FakeHub();
        w = Fixtures.weights(Fixtures.config(), 31);
        Path src = tmp.resolve("src");
        Checkpoint.write(src, w, "f32", null);
        config = Files.readAllBytes(src.resolve("config.json"));
        weights = Files.readAllBytes(src.resolve("model.safetensors"));
        hub.put("org/tiny", "config.json", config);
        hub.put("org/tiny", "model.safetensors", weights);
    }

    @AfterEach void tearDown() { hub.close(); }

    HubClient client() {
        return new HubClient(URI.create(hub.endpoint()), null, tmp.resolve("cache"));
    }

    Path repoDir() { return tmp.resolve("cache").resolve("models--org--tiny"); }

    long getsOfCdn() {
        synchronized (hub.log) { return hub.log.stream().filter(l -> l.startsWith("GET /cdn/")).count(); }
    }

    @Test void pullsIntoTheHuggingFaceCacheLayoutAndLoads() throws Exception {
        HubClient.Pulled p = client().pull("org/tiny", null);
        Path snap = repoDir().resolve("snapshots").resolve(FakeHub.COMMIT);
        assertEquals(snap, p.dir());
        assertFalse(p.converted());
        String sha = FakeHub.sha256(weights);
        assertTrue(Files.isSymbolicLink(snap.resolve("model.safetensors")));
        assertEquals(Path.of("../../blobs/" + sha), Files.readSymbolicLink(snap.resolve("model.safetensors")));
        assertArrayEquals(weights, Files.readAllBytes(repoDir().resolve("blobs").resolve(sha)));
        assertArrayEquals(config, Files.readAllBytes(repoDir().resolve("blobs").resolve(FakeHub.gitBlobId(config))));
        assertEquals(FakeHub.COMMIT, Files.readString(repoDir().resolve("refs/main")));
        ConverterTest.assertSameBits(w, Checkpoint.load(p.dir()).weights());
        assertEquals(2, Manifest.verify(p.dir()));

        long gets = getsOfCdn();
        assertEquals(1, gets);
        client().pull("org/tiny", "main"); // cached: only metadata requests this time
        assertEquals(gets, getsOfCdn());
        assertEquals(snap, client().pull("org/tiny", FakeHub.COMMIT).dir(), "a commit revision names the same snapshot");
        assertTrue(hub.log.contains("HEAD /org/tiny/resolve/" + FakeHub.COMMIT + "/config.json"), hub.log.toString());
    }

    /** A server that stalls mid-body no longer hangs the pull: the read times out and the download resumes. */
    @Test void aStalledDownloadTimesOutAndResumes() throws Exception {
        hub.stallsLeft = 1;
        hub.stallMs = 20_000;
        HubClient c = client();
        c.readTimeout = java.time.Duration.ofMillis(500);
        long t0 = System.nanoTime();
        HubClient.Pulled p = c.pull("org/tiny", null);
        assertTrue((System.nanoTime() - t0) / 1e9 < 15, "did not wait for the stalled server");
        ConverterTest.assertSameBits(w, Checkpoint.load(p.dir()).weights());
        List<String> gets = hub.log.stream().filter(l -> l.startsWith("GET /cdn/")).toList();
        assertEquals(2, gets.size(), gets.toString());
        assertTrue(rangeStart(gets.get(1)) > 0, "resumed with a Range request");
        // stalling every time: a one-line error after the attempts, not a hang
        hub.stallsLeft = 10;
        hub.stallMs = 5_000;
        hub.put("org/other", "config.json", config);
        byte[] w2 = weights.clone();
        w2[w2.length - 1] ^= 1;
        hub.put("org/other", "model.safetensors", w2);
        HubClient c2 = client();
        c2.readTimeout = java.time.Duration.ofMillis(300);
        c2.attempts = 2;
        NshapException e = assertThrows(NshapException.class, () -> c2.pull("org/other", null));
        assertTrue(e.getMessage().contains("download interrupted") && e.getMessage().contains("the server stalled"), e.getMessage());
        assertFalse(e.getMessage().contains("\n"));
    }

    /** A config.json sent without a declared size is cut off at the cap for its kind, not downloaded for ever. */
    @Test void anUndeclaredSizeIsCappedPerFileKind() throws Exception {
        hub.undeclaredPadding = HubClient.maxBytes("config.json") + (1 << 20);
        NshapException e = assertThrows(NshapException.class, () -> client().pull("org/tiny", null));
        assertTrue(e.getMessage().contains("config.json: the server sent more than " + HubClient.maxBytes("config.json")
                + " bytes without declaring a size"), e.getMessage());
        try (var files = Files.walk(repoDir())) {
            assertTrue(files.noneMatch(f -> Files.isRegularFile(f) && f.toString().contains("incomplete")), "the partial download is deleted");
        }
        // declared too large: refused before a byte is fetched
        assertTrue(HubClient.maxBytes("model.safetensors") > 6_400_000_000L, "GPT-2 xl in f32 fits");
        assertTrue(HubClient.maxBytes("vocab.json") < HubClient.maxBytes("model.safetensors"));
    }

    @Test void resumesWithARangeRequestWhenTheConnectionDrops() throws Exception {
        hub.cutsLeft = 1;
        HubClient.Pulled p = client().pull("org/tiny", null);
        ConverterTest.assertSameBits(w, Checkpoint.load(p.dir()).weights());
        List<String> gets = hub.log.stream().filter(l -> l.startsWith("GET /cdn/")).toList();
        assertEquals(2, gets.size(), gets.toString());
        assertFalse(gets.get(0).contains("bytes="), gets.toString());
        // The server sends half the body before dropping the connection; TCP may lose some of what was in flight,
        // so the client resumes from whatever it had saved: somewhere in (0, half].
        long from = rangeStart(gets.get(1));
        assertTrue(from > 0 && from <= weights.length / 2, gets.toString());
    }

    private static long rangeStart(String logLine) {
        int at = logLine.lastIndexOf(" bytes=");
        assertTrue(at >= 0 && logLine.endsWith("-"), "not a Range request: " + logLine);
        return Long.parseLong(logLine.substring(at + " bytes=".length(), logLine.length() - 1));
    }

    @Test void anInterruptedRunLeavesAPartialFileThatTheNextRunResumes() throws Exception {
        hub.cutsLeft = 1;
        HubClient c = client();
        c.attempts = 1;
        NshapException e = assertThrows(NshapException.class, () -> c.pull("org/tiny", null));
        assertTrue(e.getMessage().contains("run the same command again to resume"), e.getMessage());
        String sha = FakeHub.sha256(weights);
        Path part = repoDir().resolve("blobs").resolve(sha + ".incomplete");
        long saved = Files.size(part);
        assertTrue(saved > 0 && saved <= weights.length / 2, "partial file of " + saved + " bytes");
        assertFalse(Files.exists(repoDir().resolve("blobs").resolve(sha)));

        HubClient.Pulled p = client().pull("org/tiny", null);
        ConverterTest.assertSameBits(w, Checkpoint.load(p.dir()).weights());
        assertFalse(Files.exists(part));
        String last = hub.log.stream().filter(l -> l.startsWith("GET /cdn/")).reduce((a, b) -> b).orElseThrow();
        assertEquals(saved, rangeStart(last), last);
    }

    @Test void corruptBytesFailTheChecksumAndLeaveNothing() throws Exception {
        hub.corrupt = true;
        ConverterTest.Run r = ConverterTest.cli("model", "pull", "org/tiny", "--endpoint", hub.endpoint(),
                "--cache-dir", tmp.resolve("cache").toString());
        assertEquals(2, r.code());
        String err = r.err().strip();
        String last = err.lines().reduce((a, b) -> b).orElse("");
        assertTrue(last.contains("checksum mismatch") && last.contains(FakeHub.sha256(weights)), err);
        try (Stream<Path> s = Files.list(repoDir().resolve("blobs"))) {
            assertEquals(List.of(FakeHub.gitBlobId(config)), s.map(x -> x.getFileName().toString()).toList(),
                    "only config.json's blob: no corrupt blob, no .incomplete");
        }
        assertFalse(Files.exists(repoDir().resolve("snapshots").resolve(FakeHub.COMMIT).resolve("model.safetensors")));
    }

    @Test void notFoundIsAOneLineError() {
        ConverterTest.Run r = ConverterTest.cli("model", "pull", "org/nope", "--endpoint", hub.endpoint(),
                "--cache-dir", tmp.resolve("cache").toString());
        assertEquals(2, r.code());
        assertEquals(1, r.err().strip().lines().count(), r.err());
        assertTrue(r.err().contains("org/nope") && r.err().contains("not found"), r.err());

        hub.put("org/noweights", "config.json", config);
        NshapException e = assertThrows(NshapException.class, () -> client().pull("org/noweights", null));
        assertTrue(e.getMessage().contains("no model.safetensors"), e.getMessage());

        e = assertThrows(NshapException.class, () -> client().pull("org/tiny", "v9"));
        assertTrue(e.getMessage().contains("revision 'v9' not found"), e.getMessage());
    }

    @Test void followsRedirectsOfARenamedRepository() throws Exception {
        hub.renamed.put("oldname", "org/tiny");
        HubClient.Pulled p = client().pull("oldname", null);
        ConverterTest.assertSameBits(w, Checkpoint.load(p.dir()).weights());
        assertTrue(hub.log.contains("HEAD /oldname/resolve/main/config.json"), hub.log.toString());
        assertTrue(hub.log.contains("HEAD /org/tiny/resolve/main/config.json"), hub.log.toString());
    }

    @Test void binOnlyRepositoryIsConverted() throws Exception {
        Path bin = tmp.resolve("pytorch_model.bin");
        Fixtures.writeTorchZip(bin, w, "F32");
        hub.put("org/old", "config.json", config);
        hub.put("org/old", "pytorch_model.bin", Files.readAllBytes(bin));
        hub.put("org/old", "vocab.json", "{\"a\": 0}".getBytes(StandardCharsets.UTF_8));
        hub.put("org/old", "merges.txt", "#version: 0.2\n".getBytes(StandardCharsets.UTF_8));
        ConverterTest.Run r = ConverterTest.cli("model", "pull", "org/old", "--endpoint", hub.endpoint(),
                "--cache-dir", tmp.resolve("cache").toString());
        assertEquals(0, r.code(), r.err());
        Path out = Path.of(r.out().strip());
        assertEquals(tmp.resolve("cache/models--org--old/converted").resolve(FakeHub.COMMIT), out);
        ConverterTest.assertSameBits(w, Checkpoint.load(out).weights());
        assertEquals(4, Manifest.verify(out));
        assertEquals(0, ConverterTest.cli("model", "verify", out.toString()).code());
        assertEquals("pytorch-zip", Json.readTree(out.resolve("manifest.json")).get("source").get("format").asText());
    }

    @Test void offlineIsAOneLineError() throws Exception {
        int port;
        try (ServerSocket s = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            port = s.getLocalPort(); // closed when the block ends: nothing listens there
        }
        ConverterTest.Run r = ConverterTest.cli("model", "pull", "gpt2", "--endpoint", "http://127.0.0.1:" + port,
                "--cache-dir", tmp.resolve("cache").toString());
        assertEquals(2, r.code());
        assertEquals(1, r.err().strip().lines().count(), r.err());
        assertTrue(r.err().contains("cannot reach the Hugging Face hub"), r.err());
    }

    @Test void offlineFallsBackToAVerifiedCachedCopy() throws Exception {
        HubClient.Pulled first = client().pull("org/tiny", null);
        hub.close();
        HubClient offline = new HubClient(URI.create(hub.endpoint()), null, tmp.resolve("cache"));
        HubClient.Pulled again = offline.pull("org/tiny", null);
        assertEquals(first.dir(), again.dir());
        assertEquals(FakeHub.COMMIT, again.commit());
        // a damaged cached copy is not used: the offline error stands
        Path blob = repoDir().resolve("blobs").resolve(FakeHub.sha256(weights));
        byte[] b = Files.readAllBytes(blob);
        b[b.length - 1] ^= 1;
        Files.write(blob, b);
        NshapException e = assertThrows(NshapException.class, () -> offline.pull("org/tiny", null));
        assertTrue(e.getMessage().contains("cannot reach") && e.getMessage().contains("no verified copy"), e.getMessage());
    }

    @Test void tokenGoesToTheHubButNeverToTheCdn() throws Exception {
        try (FakeHub cdn = new FakeHub()) {
            cdn.put("org/tiny", "model.safetensors", weights);
            hub.cdnOrigin = cdn.endpoint().replace("127.0.0.1", "localhost"); // another origin
            HubClient c = new HubClient(URI.create(hub.endpoint()), "hf_secret", tmp.resolve("cache"));
            HubClient.Pulled p = c.pull("org/tiny", null);
            ConverterTest.assertSameBits(w, Checkpoint.load(p.dir()).weights());
            assertTrue(hub.log.stream().allMatch(l -> l.endsWith("[Bearer hf_secret]")), hub.log.toString());
            assertEquals(1, cdn.log.size(), cdn.log.toString());
            assertFalse(cdn.log.get(0).contains("hf_secret"), cdn.log.toString());
        }
    }

    @Test void namesAreCheckedAndAliased() {
        assertEquals("openai-community/gpt2-xl", HubClient.repoId("gpt2-xl"));
        assertEquals("distilbert/distilgpt2", HubClient.repoId("distilgpt2"));
        assertEquals("someone/model", HubClient.repoId("someone/model"));
        assertThrows(NshapException.class, () -> HubClient.repoId("../../etc"));
        assertThrows(NshapException.class, () -> HubClient.repoId("a/b/c"));
    }
}
