package dev.m2q.cli;

import dev.m2q.core.InputException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/** Reads user text files strictly: missing, unreadable or non-UTF-8 files are bad input. */
final class TextFiles {
    private TextFiles() {}

    static String readUtf8(Path file, String option) {
        if (!Files.isRegularFile(file)) {
            throw new InputException(file + ": no such file (" + option + ")");
        }
        try {
            byte[] bytes = Files.readAllBytes(file);
            return StandardCharsets.UTF_8
                    .newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(bytes))
                    .toString();
        } catch (CharacterCodingException e) {
            throw new InputException(file + ": not valid UTF-8 text (" + option + ")", e);
        } catch (IOException e) {
            throw new InputException(file + ": cannot read: " + e.getMessage(), e);
        }
    }
}
