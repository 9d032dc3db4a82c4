package dev.m2q.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.InputException;
import org.junit.jupiter.api.Test;

class SizesTest {
    @Test
    void parsesSizesAsUsersWriteThem() {
        // Integer paths: exact.
        assertEquals(1024L, Sizes.parse("1024", "--x"));
        assertEquals(512L << 20, Sizes.parse("512m", "--x"));
        assertEquals(4L << 30, Sizes.parse("4G", "--x"));
        assertEquals(4L << 30, Sizes.parse("4GB", "--x"));
        assertEquals(4L << 30, Sizes.parse("4GiB", "--x"));
        assertEquals(3L << 29, Sizes.parse("1.5g", "--x"));
        assertEquals(2L << 40, Sizes.parse("2t", "--x"));
    }

    @Test
    void refusesWhatIsNotASize() {
        for (String bad : new String[] {"", "g", "-1g", "lots", "1.2.3m", "NaN"}) {
            InputException e = assertThrows(InputException.class, () -> Sizes.parse(bad, "--max-memory"), bad);
            assertTrue(e.getMessage().startsWith("--max-memory"), e.getMessage());
        }
    }
}
