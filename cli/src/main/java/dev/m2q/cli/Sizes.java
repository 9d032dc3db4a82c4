package dev.m2q.cli;

import dev.m2q.core.InputException;
import java.util.Locale;

/** Byte sizes as users write them: 512m, 8g, 4GB, 1024 (bytes). Powers of 1024. */
final class Sizes {
    private Sizes() {}

    static long parse(String text, String option) {
        String t = text.trim().toLowerCase(Locale.ROOT).replaceAll("i?b$", "");
        long unit = 1;
        if (!t.isEmpty()) {
            char c = t.charAt(t.length() - 1);
            int shift =
                    switch (c) {
                        case 'k' -> 10;
                        case 'm' -> 20;
                        case 'g' -> 30;
                        case 't' -> 40;
                        default -> 0;
                    };
            if (shift > 0) {
                unit = 1L << shift;
                t = t.substring(0, t.length() - 1);
            }
        }
        try {
            double v = Double.parseDouble(t);
            if (!(v >= 0) || v * unit > Long.MAX_VALUE) {
                throw new NumberFormatException();
            }
            return (long) (v * unit);
        } catch (NumberFormatException e) {
            throw new InputException(option + ": \"" + text + "\" is not a size (examples: 512m, 8g, 1024)");
        }
    }
}
