package dev.m2q.core.json;

/** Malformed JSON; the message names the offset. */
public final class JsonException extends IllegalArgumentException {
    public JsonException(String message) {
        super(message);
    }
}
