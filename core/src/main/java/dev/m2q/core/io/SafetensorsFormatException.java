package dev.m2q.core.io;

import dev.m2q.core.InputException;
import java.io.Serial;
import java.nio.file.Path;
import java.util.Optional;

/**
 * A safetensors file, shard index or tensor that is malformed or not what the caller needs. The message reads
 * {@code <file>: tensor "<name>": <what is wrong>}; file and tensor are left out only where unknown.
 */
public final class SafetensorsFormatException extends InputException {
    @Serial
    private static final long serialVersionUID = 1L;

    private static final int MAX_NAME_CHARS = 200;

    private final transient Path file;
    private final String tensor;

    public SafetensorsFormatException(Path file, String detail) {
        this(file, null, detail, null);
    }

    public SafetensorsFormatException(Path file, String tensor, String detail) {
        this(file, tensor, detail, null);
    }

    public SafetensorsFormatException(Path file, String tensor, String detail, Throwable cause) {
        super(message(file, tensor, detail), cause);
        this.file = file;
        this.tensor = tensor;
    }

    /** The file (shard or index) at fault, or null for a tensor that lives in no file. */
    public Path file() {
        return file;
    }

    /** The tensor at fault, when the problem belongs to one. */
    public Optional<String> tensor() {
        return Optional.ofNullable(tensor);
    }

    private static String message(Path file, String tensor, String detail) {
        StringBuilder b = new StringBuilder();
        if (file != null) {
            b.append(file).append(": ");
        }
        if (tensor != null) {
            b.append("tensor ").append(quote(tensor)).append(": ");
        }
        return b.append(detail).toString();
    }

    /**
     * A name from an untrusted header, quoted for a one-line message: control characters escaped, long names cut.
     */
    static String quote(String name) {
        StringBuilder b = new StringBuilder("\"");
        int n = Math.min(name.length(), MAX_NAME_CHARS);
        for (int i = 0; i < n; i++) {
            char c = name.charAt(i);
            if (c < 0x20 || c == 0x7f || c == '"' || c == '\\') {
                b.append(String.format("\\u%04x", (int) c));
            } else {
                b.append(c);
            }
        }
        if (name.length() > n) {
            b.append("…(").append(name.length()).append(" chars)");
        }
        return b.append('"').toString();
    }
}
