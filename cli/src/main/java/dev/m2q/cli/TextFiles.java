package dev.m2q.cli;

import dev.m2q.core.InputException;
import dev.m2q.core.io.InputText;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * Reads a user's text file ({@code --text}) strictly through {@link InputText}: missing, unreadable, corrupt or
 * non-UTF-8 files are bad input; a compressed file is read by content; a tar's members are joined in archive order,
 * each ending in a line break.
 */
final class TextFiles {
    private TextFiles() {}

    static String readUtf8(Path file, String option) {
        if (!Files.isRegularFile(file)) {
            throw new InputException(file + ": no such file (" + option + ")");
        }
        List<InputText.Part> parts = InputText.read(file, option + " file");
        if (parts.size() == 1) {
            return parts.getFirst().text();
        }
        StringBuilder b = new StringBuilder();
        for (InputText.Part p : parts) {
            b.append(p.text());
            if (!p.text().isEmpty() && !p.text().endsWith("\n")) {
                b.append('\n');
            }
        }
        return b.toString();
    }
}
