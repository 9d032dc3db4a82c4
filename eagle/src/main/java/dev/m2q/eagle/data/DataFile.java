package dev.m2q.eagle.data;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectReader;
import dev.m2q.core.InputException;
import dev.m2q.core.io.AtomicFile;
import dev.m2q.core.json.Json;
import dev.m2q.core.json.JsonException;
import java.io.BufferedReader;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * EAGLE-3 training data as m2q writes it ({@code m2q eagle data}): JSONL, the first line a header object, then one
 * {@code {"ids": [...], "loss_mask": [0|1, ...]}} per sequence. The header names the format and its version, the
 * target (path, vocabulary size, sha256 of each weight file and of config.json), the prompts file and its sha256,
 * and the generation settings (temperature, seed, max new tokens, stop ids).
 *
 * @param header the header line
 * @param sequences the sequences, in prompt order
 */
public record DataFile(Header header, List<Sequence> sequences) {
    public static final String FORMAT = "m2q-eagle-data";
    public static final String FORMAT_KEY = "format";
    public static final String VERSION_KEY = "format_version";
    public static final int VERSION = 1;

    /**
     * One chat: prompt and response token ids [T] and the loss mask [T], true on the generated assistant tokens
     * (including the stop token when the target generated one).
     */
    public record Sequence(int[] ids, boolean[] lossMask) {
        public Sequence {
            if (ids.length != lossMask.length || ids.length == 0) {
                throw new IllegalArgumentException(
                        "sequence of " + ids.length + " ids has a loss mask of " + lossMask.length);
            }
        }

        public int length() {
            return ids.length;
        }

        public int assistantTokens() {
            int n = 0;
            for (boolean b : lossMask) {
                n += b ? 1 : 0;
            }
            return n;
        }
    }

    /**
     * The header line. What {@code m2q eagle data} records about the generation (target, prompts, settings) is
     * null in a file written by hand without it, and then not written.
     *
     * @param targetSha256 sha256 of the target's weight files and config.json, by name
     * @param vocabSize the target vocabulary the ids were checked against
     * @param promptsSha256 sha256 of the prompts file
     * @param stopIds the ids that ended an answer
     * @param sequences how many sequence lines follow; null when not announced
     */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    public record Header(
            String format,
            @JsonProperty(VERSION_KEY) int formatVersion,
            String target,
            @JsonProperty("target_sha256") Map<String, String> targetSha256,
            @JsonProperty("vocab_size") int vocabSize,
            String prompts,
            @JsonProperty("prompts_sha256") String promptsSha256,
            Double temperature,
            Long seed,
            @JsonProperty("max_new_tokens") Integer maxNewTokens,
            @JsonProperty("stop_ids") int[] stopIds,
            Integer sequences) {
        /** The header of a generated file of {@code sequences} sequences. */
        public static Header generated(
                String target,
                Map<String, String> targetSha256,
                int vocabSize,
                String prompts,
                String promptsSha256,
                double temperature,
                long seed,
                int maxNewTokens,
                int[] stopIds,
                int sequences) {
            return new Header(
                    FORMAT,
                    VERSION,
                    target,
                    targetSha256,
                    vocabSize,
                    prompts,
                    promptsSha256,
                    temperature,
                    seed,
                    maxNewTokens,
                    stopIds,
                    sequences);
        }
    }

    /** Reads a header leniently as to the generation's record, which a hand-written file may leave out. */
    private static final ObjectReader HEADER =
            Json.mapper().readerFor(Header.class).without(DeserializationFeature.FAIL_ON_MISSING_CREATOR_PROPERTIES);

    /** A sequence's line: token ids [T] and the loss mask [T] as 0/1. */
    private record Line(
            int[] ids, @JsonProperty("loss_mask") int[] lossMask) {}

    public DataFile {
        sequences = List.copyOf(sequences);
        if (header.sequences() != null && header.sequences() != sequences.size()) {
            throw new IllegalArgumentException(
                    "the header announces " + header.sequences() + " sequences, there are " + sequences.size());
        }
    }

    /** The target vocabulary size the ids were checked against. */
    public int vocabSize() {
        return header.vocabSize();
    }

    /**
     * Writes {@code file} via a temporary name beside it and a rename ({@link AtomicFile}), so it is either absent or
     * complete.
     */
    public void write(Path file) {
        AtomicFile.write(file, w -> {
            w.write(Json.write(header));
            w.write('\n');
            for (Sequence s : sequences) {
                int[] mask = new int[s.length()];
                for (int t = 0; t < mask.length; t++) {
                    mask[t] = s.lossMask()[t] ? 1 : 0;
                }
                w.write(Json.write(new Line(s.ids(), mask)));
                w.write('\n');
            }
        });
    }

    /**
     * Reads and checks {@code file}: the header's format and version, then every line (ids integers in [0,
     * vocab_size), a 0/1 mask of the same length, at least one assistant token), and the sequence count. Errors
     * name the file and line.
     */
    public static DataFile read(Path file) {
        if (!Files.isRegularFile(file)) {
            throw new InputException(file + ": no such data file (write one with m2q eagle data)");
        }
        try (BufferedReader r = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
            String first = r.readLine();
            if (first == null) {
                throw new InputException(file + ": empty; expected an " + FORMAT + " header line");
            }
            Map<String, Object> tree = object(first, file, 1);
            if (!FORMAT.equals(tree.get(FORMAT_KEY))) {
                throw new InputException(file + ":1: not an " + FORMAT + " file (header \"format\" is "
                        + tree.get(FORMAT_KEY) + "); write one with m2q eagle data");
            }
            if (!(tree.get(VERSION_KEY) instanceof Long v) || v != VERSION) {
                throw new InputException(file + ":1: format_version " + tree.get(VERSION_KEY)
                        + " is not supported (this m2q reads version " + VERSION + ")");
            }
            if (!(tree.get("vocab_size") instanceof Long vocab) || vocab <= 0 || vocab > Integer.MAX_VALUE) {
                throw new InputException(file + ":1: the header has no positive integer \"vocab_size\"");
            }
            Header header;
            try {
                header = Json.read(first, HEADER);
            } catch (JsonException e) {
                throw new InputException(file + ":1: not an " + FORMAT + " header: " + e.getMessage(), e);
            }
            List<Sequence> seqs = new ArrayList<>();
            int lineNo = 1;
            for (String line = r.readLine(); line != null; line = r.readLine()) {
                lineNo++;
                if (line.isBlank()) {
                    continue;
                }
                seqs.add(sequence(object(line, file, lineNo), file + ":" + lineNo + ": ", vocab.intValue()));
            }
            if (header.sequences() != null && header.sequences() != seqs.size()) {
                throw new InputException(file + ": the header announces " + header.sequences() + " sequences but the"
                        + " file holds " + seqs.size() + " (truncated?)");
            }
            if (seqs.isEmpty()) {
                throw new InputException(file + ": holds no sequences");
            }
            return new DataFile(header, seqs);
        } catch (IOException e) {
            throw new InputException(file + ": cannot read: " + e.getMessage(), e);
        }
    }

    /** Refuses data whose ids were written for another vocabulary than {@code targetVocab}. */
    public void checkVocab(int targetVocab, Object where) {
        if (vocabSize() != targetVocab) {
            throw new InputException(where + ": the data was generated for a vocabulary of " + vocabSize()
                    + " tokens, the target has " + targetVocab);
        }
    }

    private static Map<String, Object> object(String line, Path file, int lineNo) {
        try {
            return Json.parseObject(line);
        } catch (JsonException e) {
            throw new InputException(file + ":" + lineNo + ": malformed JSON: " + e.getMessage(), e);
        }
    }

    private static Sequence sequence(Map<String, Object> row, String where, int vocab) {
        if (!(row.get("ids") instanceof List<?> ids) || !(row.get("loss_mask") instanceof List<?> mask)) {
            throw new InputException(where + "each sequence needs \"ids\" and \"loss_mask\" arrays");
        }
        if (ids.size() != mask.size() || ids.isEmpty()) {
            throw new InputException(where + "ids (" + ids.size() + ") and loss_mask (" + mask.size()
                    + ") differ in length or are empty");
        }
        int[] a = new int[ids.size()];
        boolean[] m = new boolean[ids.size()];
        boolean any = false;
        for (int t = 0; t < a.length; t++) {
            if (!(ids.get(t) instanceof Long id) || id < 0 || id >= vocab) {
                throw new InputException(
                        where + "ids[" + t + "] = " + ids.get(t) + " is not a token id in [0, " + vocab + ")");
            }
            a[t] = id.intValue();
            if (!(mask.get(t) instanceof Long b) || (b != 0 && b != 1)) {
                throw new InputException(where + "loss_mask[" + t + "] = " + mask.get(t) + " is not 0 or 1");
            }
            m[t] = b == 1;
            any |= m[t];
        }
        if (!any) {
            throw new InputException(where + "the sequence has no assistant token (loss_mask is all 0)");
        }
        return new Sequence(a, m);
    }
}
