package dev.nshap;

/**
 * Bad input from the user (a malformed file, a wrong shape, an unknown id...). The CLI prints its message
 * as one line and exits with code 2; nothing else should throw for input the user controls.
 */
public class NshapException extends RuntimeException {
    public NshapException(String message) { super(message); }
    public NshapException(String message, Throwable cause) { super(message, cause); }
}
