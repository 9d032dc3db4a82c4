package dev.m2q.core;

/**
 * A check that m2q runs on its own results failed mid-run (the results cannot be trusted, the input was fine): the
 * command line turns it into exit code 1, as for a failed gate, with its message as the one-line reason, which
 * says what differed and what to do instead.
 */
public class CheckFailedException extends RuntimeException {
    public CheckFailedException(String message) {
        super(message);
    }
}
