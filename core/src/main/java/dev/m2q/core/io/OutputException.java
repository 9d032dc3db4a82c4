package dev.m2q.core.io;

import dev.m2q.core.InputException;

/**
 * The output location failed the run: it cannot be created or written (read-only, full, a file where a folder is
 * needed), or another run is writing it. Exit 2 like bad input, since the user fixes it the same way (another
 * location, free space, wait); unlike bad input it says nothing against the work already done, so a run that
 * stops on it keeps its finished layers for {@code --resume}.
 */
public class OutputException extends InputException {
    public OutputException(String message) {
        super(message);
    }

    public OutputException(String message, Throwable cause) {
        super(message, cause);
    }
}
