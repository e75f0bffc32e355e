package dev.nshap.io;

import dev.nshap.NshapException;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Optional;

/**
 * A lock on an output (a result prefix, a model directory): the file {@code OUT.lock} beside it, created atomically
 * and holding the owner's PID and start time. A second run into the same output is refused while the owner lives;
 * a lock left by a process that died (kill -9, power loss) is recognised as stale and taken over.
 */
public final class OutputLock implements AutoCloseable {
    private final Path file;
    private final String token;
    private boolean released;
    private Thread hook;

    private OutputLock(Path file, String token) {
        this.file = file;
        this.token = token;
    }

    /** The lock file of an output path: {@code dir/name.lock}. */
    public static Path lockFile(Path out) {
        Path abs = out.toAbsolutePath().normalize();
        return abs.resolveSibling(abs.getFileName() + ".lock");
    }

    /** Takes the lock of {@code out} or refuses, naming the run that holds it. */
    public static OutputLock acquire(Path out) {
        Path f = lockFile(out);
        ProcessHandle me = ProcessHandle.current();
        String token = me.pid() + " " + startOf(me) + "\n";
        for (int attempt = 0; attempt < 3; attempt++) {
            try {
                Files.createDirectories(f.getParent());
                Files.writeString(f, token, StandardCharsets.UTF_8, java.nio.file.StandardOpenOption.CREATE_NEW,
                        java.nio.file.StandardOpenOption.WRITE);
                OutputLock l = new OutputLock(f, token);
                l.hook = new Thread(l::releaseQuietly, "nshap-output-lock");   // Ctrl-C still removes it
                Runtime.getRuntime().addShutdownHook(l.hook);
                return l;
            } catch (FileAlreadyExistsException e) {
                String held = read(f);
                if (held == null) continue;                 // released meanwhile: try again
                if (alive(held)) {
                    throw new NshapException(out + " is being written by another nshap run (pid "
                            + held.strip().split("\\s+")[0] + "; lock " + f + "): wait for it, or choose another --out");
                }
                try { Files.deleteIfExists(f); } catch (IOException ignored) { }  // stale: its owner is gone
            } catch (IOException e) {
                throw new UncheckedIOException("cannot create lock " + f + ": " + e.getMessage(), e);
            }
        }
        throw new NshapException(out + ": could not take the output lock " + f + " (another run keeps taking it)");
    }

    private static String startOf(ProcessHandle p) {
        Optional<java.time.Instant> s = p.info().startInstant();
        return s.map(i -> Long.toString(i.toEpochMilli())).orElse("?");
    }

    private static String read(Path f) {
        try {
            return Files.readString(f, StandardCharsets.UTF_8);
        } catch (NoSuchFileException e) {
            return null;
        } catch (IOException e) {
            return "";
        }
    }

    /** True when the lock's owner still runs: same PID and, where known, the same start time (PIDs are reused). */
    static boolean alive(String held) {
        String[] p = held.strip().split("\\s+");
        long pid;
        try {
            pid = Long.parseLong(p[0]);
        } catch (NumberFormatException e) {
            return false;   // not our format (an empty file from a crash mid-write): stale
        }
        Optional<ProcessHandle> h = ProcessHandle.of(pid);
        if (h.isEmpty() || !h.get().isAlive()) return false;
        if (p.length < 2 || p[1].equals("?")) return true;
        String now = startOf(h.get());
        return now.equals("?") || now.equals(p[1]);
    }

    private void releaseQuietly() {
        try { close(); } catch (RuntimeException ignored) { }
    }

    /** Removes the lock file if it is still ours. */
    @Override public synchronized void close() {
        if (released) return;
        released = true;
        if (hook != null && Thread.currentThread() != hook) {
            try { Runtime.getRuntime().removeShutdownHook(hook); } catch (IllegalStateException ignored) { } // shutting down
        }
        try {
            if (token.equals(read(file))) Files.deleteIfExists(file);
        } catch (IOException ignored) { }
    }
}
