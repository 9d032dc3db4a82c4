package dev.m2q.core.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.InputException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The staged swap: the old output survives every failure, one writer at a time, and nothing is left behind. */
class StagedDirTest {
    /** A previous output: a folder with one file. */
    static Path previous(Path tmp) throws IOException {
        Path out = Files.createDirectories(tmp.resolve("out"));
        Files.writeString(out.resolve("old.txt"), "previous");
        return out;
    }

    static List<String> listing(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    /** Moves like Files.move, but throws instead of the {@code failAt}-th move (1-based). */
    static StagedDir.Mover failingAt(int failAt, AtomicInteger calls) {
        return (from, to) -> {
            if (calls.incrementAndGet() == failAt) {
                throw new IOException("injected failure moving " + from.getFileName() + " to " + to.getFileName());
            }
            Files.move(from, to);
        };
    }

    @Test
    void commitReplacesTheOldOutputAndLeavesNoSiblingsOrLock(@TempDir Path tmp) throws IOException {
        Path out = previous(tmp);
        StagedDir s = StagedDir.open(out, true, false, null);
        assertEquals(tmp.resolve("out.m2q-partial"), s.dir());
        String sha = s.writeAtomically("new.txt", "fresh");
        assertEquals(Sha256.ofFile(s.dir().resolve("new.txt")), sha);
        assertEquals(List.of("out", "out.m2q-partial"), listing(tmp), "the old output is untouched while building");
        s.commit();
        assertEquals(List.of("new.txt"), listing(out));
        assertEquals(List.of("out"), listing(tmp));
    }

    @Test
    void aFailureWhileBuildingLeavesTheOldOutputAsItWas(@TempDir Path tmp) throws IOException {
        Path out = previous(tmp);
        try (StagedDir s = StagedDir.open(out, true, false, null)) {
            s.writeAtomically("half.txt", "half");
        }
        assertEquals(List.of("old.txt"), listing(out));
        assertEquals("previous", Files.readString(out.resolve("old.txt")));
        StagedDir d = StagedDir.open(out, true, false, null);
        d.discard();
        assertEquals(List.of("out"), listing(tmp), "discard deletes the partial folder");
    }

    @Test
    void aFailureMovingTheOldOneAsideChangesNothing(@TempDir Path tmp) throws IOException {
        Path out = previous(tmp);
        StagedDir s = StagedDir.open(out, true, false, null, false, failingAt(1, new AtomicInteger()));
        s.writeAtomically("new.txt", "fresh");
        OutputException e = assertThrows(OutputException.class, s::commit);
        assertTrue(e.getMessage().contains("it is unchanged"), e.getMessage());
        assertEquals(List.of("old.txt"), listing(out));
        assertTrue(Files.isRegularFile(s.dir().resolve("new.txt")), "the new one stays in the partial folder");
    }

    @Test
    void aFailureMovingTheNewOneInPutsTheOldOneBack(@TempDir Path tmp) throws IOException {
        Path out = previous(tmp);
        StagedDir s = StagedDir.open(out, true, false, null, false, failingAt(2, new AtomicInteger()));
        s.writeAtomically("new.txt", "fresh");
        OutputException e = assertThrows(OutputException.class, s::commit);
        assertTrue(e.getMessage().contains("the previous one is back in place"), e.getMessage());
        assertEquals(List.of("old.txt"), listing(out));
        assertEquals(List.of("out", "out.m2q-partial"), listing(tmp));
        // the lock was released: a rerun may take over
        StagedDir.open(out, true, false, null).discard();
    }

    @Test
    void whenPuttingTheOldOneBackFailsTooTheMessageSaysWhereEachIs(@TempDir Path tmp) throws IOException {
        Path out = previous(tmp);
        AtomicInteger calls = new AtomicInteger();
        StagedDir.Mover mover = (from, to) -> {
            if (calls.incrementAndGet() >= 2) {
                throw new IOException("injected");
            }
            Files.move(from, to);
        };
        StagedDir s = StagedDir.open(out, true, false, null, false, mover);
        OutputException e = assertThrows(OutputException.class, s::commit);
        assertTrue(e.getMessage().contains("the previous one is in " + tmp.resolve("out.m2q-old")), e.getMessage());
        assertEquals("previous", Files.readString(tmp.resolve("out.m2q-old/old.txt")));
        // the next run refuses to start until the stranded previous output is put back
        InputException stranded = assertThrows(InputException.class, () -> StagedDir.check(out, true, false, null));
        assertTrue(stranded.getMessage().contains("move it back"), stranded.getMessage());
    }

    @Test
    void aSingleFileOutputIsSwappedTheSameWay(@TempDir Path tmp) throws IOException {
        Path out = Files.writeString(tmp.resolve("d.jsonl"), "previous");
        StagedDir s = StagedDir.openFile(out, true);
        assertEquals(tmp.resolve("d.jsonl.m2q-partial/d.jsonl"), s.path());
        AtomicFile.writeText(s.path(), "fresh");
        assertEquals("previous", Files.readString(out));
        s.commit();
        assertEquals("fresh", Files.readString(out));
        assertEquals(List.of("d.jsonl"), listing(tmp));

        StagedDir f = StagedDir.open(out, true, false, null, true, failingAt(2, new AtomicInteger()));
        AtomicFile.writeText(f.path(), "newer");
        assertThrows(OutputException.class, f::commit);
        assertEquals("fresh", Files.readString(out), "the old file is back");
    }

    @Test
    void aSecondWriterIsRefusedAndTouchesNothing(@TempDir Path tmp) throws IOException {
        Path out = previous(tmp);
        StagedDir first = StagedDir.open(out, true, false, null);
        first.writeAtomically("layer0", "work");
        OutputException e = assertThrows(OutputException.class, () -> StagedDir.open(out, true, false, null));
        assertEquals(
                out + " is being written by pid " + ProcessHandle.current().pid()
                        + " (its out.m2q-partial folder is locked); wait for that run to finish or stop it",
                e.getMessage());
        assertEquals(List.of(StagedDir.LOCK, "layer0"), listing(first.dir()), "the first run's work is intact");
        first.commit();
        assertEquals(List.of("layer0"), listing(out));
    }

    @Test
    void theChecksRefuseBeforeTouchingAnything(@TempDir Path tmp) throws IOException {
        Path out = previous(tmp);
        assertTrue(assertThrows(InputException.class, () -> StagedDir.check(out, false, false, null))
                .getMessage()
                .contains("already exists; pass --overwrite"));
        assertTrue(assertThrows(InputException.class, () -> StagedDir.check(out, true, true, "progress.json"))
                .getMessage()
                .contains("no interrupted run to resume (no progress.json)"));
        Files.createDirectories(tmp.resolve("fresh.m2q-partial"));
        InputException interrupted = assertThrows(
                InputException.class, () -> StagedDir.check(tmp.resolve("fresh"), false, false, "progress.json"));
        assertTrue(
                interrupted
                        .getMessage()
                        .contains("holds an interrupted run; pass --resume to continue it or pass"
                                + " --overwrite to start over"),
                interrupted.getMessage());
        Path blocked = Files.writeString(tmp.resolve("file"), "x");
        InputException underFile = assertThrows(
                InputException.class, () -> StagedDir.check(blocked.resolve("sub/out"), false, false, null));
        assertTrue(underFile.getMessage().contains(blocked + " is a file, not a folder"), underFile.getMessage());
        assertEquals(List.of("file", "fresh.m2q-partial", "out"), listing(tmp), "checks change nothing");
    }

    @Test
    void tooLittleFreeSpaceIsRefusedNamingTheNeed(@TempDir Path tmp) throws IOException {
        try (StagedDir s = StagedDir.open(tmp.resolve("out"), false, false, null)) {
            OutputException e =
                    assertThrows(OutputException.class, () -> s.requireSpace(Long.MAX_VALUE, "the tensors"));
            assertTrue(
                    e.getMessage().startsWith(tmp + ": the tensors need about 8589934592.0 GiB, but only "),
                    e.getMessage());
            s.requireSpace(1, "one byte");
        }
    }

    @Test
    void anAtomicWriteThatFailsLeavesNoTemporary(@TempDir Path tmp) throws IOException {
        Path dir = Files.createDirectories(tmp.resolve("config.json"));
        Files.writeString(dir.resolve("x"), "in the way");
        OutputException e = assertThrows(OutputException.class, () -> AtomicFile.writeText(dir, "{}"));
        assertTrue(e.getMessage().startsWith(dir + ": cannot write ("), e.getMessage());
        assertEquals(List.of("config.json"), listing(tmp));
    }
}
