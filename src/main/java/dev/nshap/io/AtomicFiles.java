package dev.nshap.io;

import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/** Every output is written to a temp file beside its target, then renamed: a reader never sees half a file. */
public final class AtomicFiles {
    private AtomicFiles() {}

    @FunctionalInterface
    public interface Writer { void write(OutputStream out) throws IOException; }

    public static void write(Path target, Writer body) {
        Path abs = target.toAbsolutePath();
        Path dir = abs.getParent();
        requireFileTarget(target);
        Path tmp = null;
        try {
            Files.createDirectories(dir);
            tmp = Files.createTempFile(dir, "." + abs.getFileName(), ".tmp");
            try (OutputStream out = new java.io.BufferedOutputStream(Files.newOutputStream(tmp), 1 << 16)) {
                body.write(out);
            }
            // createTempFile makes owner-only files; results are meant to be shared like any other file.
            try {
                Files.setPosixFilePermissions(tmp, java.nio.file.attribute.PosixFilePermissions.fromString("rw-r--r--"));
            } catch (UnsupportedOperationException ignored) { }
            try {
                Files.move(tmp, abs, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, abs, StandardCopyOption.REPLACE_EXISTING);
            }
            tmp = null;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + target + ": " + e.getMessage(), e);
        } finally {
            if (tmp != null) try { Files.deleteIfExists(tmp); } catch (IOException ignored) { }
        }
    }

    /**
     * Refuses, as bad input (exit 2), an output path that can never become a file: a directory, or a path under a
     * file. Commands call it before their work; {@link #write} calls it again.
     */
    public static void requireFileTarget(Path target) {
        Path abs = target.toAbsolutePath();
        if (Files.isDirectory(abs)) throw new dev.nshap.NshapException(target + " is a directory; give a file name");
        for (Path d = abs.getParent(); d != null; d = d.getParent())
            if (Files.exists(d)) {
                if (!Files.isDirectory(d)) throw new dev.nshap.NshapException(target + ": " + d + " is not a directory");
                break;
            }
    }

    public static void writeString(Path target, String text) {
        write(target, out -> out.write(text.getBytes(StandardCharsets.UTF_8)));
    }

    public static void writeBytes(Path target, byte[] bytes) {
        write(target, out -> out.write(bytes));
    }
}
