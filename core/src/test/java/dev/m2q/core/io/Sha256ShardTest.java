package dev.m2q.core.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.m2q.core.InputException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class Sha256ShardTest {
    static final Path SHARD = Path.of("..", "fixtures", "tiny-qwen2", "model.safetensors");

    /** One read gives exactly what the two separate reads give: the file's hash and each tensor's. */
    @Test
    void oneReadEqualsTheFileHashAndEveryTensorHash() {
        Sha256.OfShard h = Sha256.ofShard(SHARD);
        assertEquals(Sha256.ofFile(SHARD), h.file());
        try (SafetensorsFile f = SafetensorsFile.open(SHARD)) {
            assertEquals(List.copyOf(f.names()), List.copyOf(h.tensors().keySet()), "header order");
            for (TensorView v : f.tensors()) {
                assertEquals(Sha256.ofSegment(v.data()), h.tensors().get(v.name()), v.name());
            }
        }
    }

    /** A changed byte changes the file's hash and exactly one tensor's. */
    @Test
    void aChangedByteChangesTheFileAndOneTensor(@TempDir Path tmp) throws IOException {
        Path copy = tmp.resolve("model.safetensors");
        Files.copy(SHARD, copy);
        Sha256.OfShard before = Sha256.ofShard(copy);
        try (var ch = Files.newByteChannel(copy, StandardOpenOption.WRITE)) {
            ch.position(Files.size(copy) - 3);
            ch.write(ByteBuffer.wrap(new byte[] {0x5a}));
        }
        Sha256.OfShard after = Sha256.ofShard(copy);
        assertEquals(Sha256.ofFile(copy), after.file());
        assertNotEquals(before.file(), after.file());
        long changed = before.tensors().entrySet().stream()
                .filter(e -> !e.getValue().equals(after.tensors().get(e.getKey())))
                .count();
        assertEquals(1, changed);
    }

    @Test
    void aFileThatIsNotSafetensorsIsBadInput(@TempDir Path tmp) throws IOException {
        Path junk = Files.writeString(tmp.resolve("x.safetensors"), "not a shard");
        assertThrows(InputException.class, () -> Sha256.ofShard(junk));
    }
}
