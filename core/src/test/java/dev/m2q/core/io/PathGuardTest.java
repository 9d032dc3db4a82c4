package dev.m2q.core.io;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.InputException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** An output that is, contains or lies inside an input is refused, however the paths are spelled. */
class PathGuardTest {
    static InputException refused(Path out, Path in) {
        return assertThrows(
                InputException.class,
                () -> PathGuard.check(PathGuard.staged("--out", out), PathGuard.of("--model", in)));
    }

    @Test
    void sameContainingOrInsideIsRefusedNamingBoth(@TempDir Path tmp) throws IOException {
        Path model = Files.createDirectories(tmp.resolve("m"));
        InputException same = refused(model, model);
        assertTrue(same.getMessage().contains("--out " + model), same.getMessage());
        assertTrue(same.getMessage().contains("is the same path as --model " + model), same.getMessage());
        assertTrue(refused(tmp, model).getMessage().contains("contains --model"));
        assertTrue(refused(model.resolve("q4"), model).getMessage().contains("lies inside --model"));
        // a relative detour and a trailing "." are the same folder
        assertTrue(refused(tmp.resolve("x/../m/."), model).getMessage().contains("is the same path as"));
    }

    @Test
    void symlinksAreFollowedOnEitherSide(@TempDir Path tmp) throws IOException {
        Path model = Files.createDirectories(tmp.resolve("m"));
        Path link = Files.createSymbolicLink(tmp.resolve("link"), model);
        InputException viaOut = refused(link, model);
        assertTrue(viaOut.getMessage().contains("(" + model.toRealPath() + ")"), viaOut.getMessage());
        refused(model, link);
        refused(link.resolve("not-yet/q4"), model);
        Path parentLink = Files.createSymbolicLink(tmp.resolve("up"), tmp);
        refused(parentLink, model);
    }

    @Test
    void theStagingSiblingsAreOutputsToo(@TempDir Path tmp) throws IOException {
        Path prompts = Files.writeString(tmp.resolve("d.jsonl.m2q-partial"), "x");
        InputException e = refused(tmp.resolve("d.jsonl"), prompts);
        assertTrue(e.getMessage().contains(".m2q-partial folder"), e.getMessage());
    }

    @Test
    void separatePathsPass(@TempDir Path tmp) throws IOException {
        Path model = Files.createDirectories(tmp.resolve("m"));
        // a sibling whose name merely starts with the input's name is not inside it
        assertDoesNotThrow(() -> PathGuard.check(
                PathGuard.staged("--out", tmp.resolve("m-q4")),
                PathGuard.all(
                        PathGuard.of("--model", model), PathGuard.ofEach("--calib", List.of(tmp.resolve("c.txt"))))));
        assertDoesNotThrow(
                () -> PathGuard.check(PathGuard.of("--report-dir", (Path) null), PathGuard.of("--model", model)));
    }
}
