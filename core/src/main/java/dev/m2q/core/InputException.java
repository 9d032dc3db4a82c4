package dev.m2q.core;

/**
 * Bad input from the user: a malformed or truncated file, a config that does not match the weights, a missing
 * path. The command line turns it into exit code 2 with its message as the one-line reason, so the message
 * names the file (and tensor, key or option) and, where there is one, the fix.
 */
public class InputException extends RuntimeException {
    public InputException(String message) {
        super(message);
    }

    public InputException(String message, Throwable cause) {
        super(message, cause);
    }
}
