package dev.m2q.core.io;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectReader;
import dev.m2q.core.InputException;
import dev.m2q.core.json.Json;
import dev.m2q.core.json.JsonException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.stream.Stream;

/**
 * {@code m2q-manifest.json} (FORMATS.md §6): what an m2q release says about itself, and the check that the files
 * on disk are the files it describes. Besides the sha256 of every file ({@code files}), m2q records the sha256 of
 * every tensor's bytes ({@code tensors}), so a damaged shard is traced to the tensor that changed rather than only
 * to a multi-gigabyte file.
 *
 * <p><b>What must be listed.</b> A check that only compares the files a manifest names proves nothing about a file
 * that was dropped from the list. So {@link #verify} also requires every <em>covered</em> file in the folder to be
 * listed. Covered are the top-level regular files an engine or a tokenizer reads:
 *
 * <ul>
 *   <li>every {@code *.safetensors} (each shard) and every {@code *.safetensors.index.json};
 *   <li>every other {@code *.json} — {@code config.json}, {@code quantize_config.json}, {@code
 *       quantization_config.json}, {@code generation_config.json}, {@code tokenizer.json}, {@code
 *       tokenizer_config.json}, {@code special_tokens_map.json}, {@code added_tokens.json}, {@code vocab.json}, and
 *       any JSON a loader may pick up by name — except the manifest itself and {@code validation.json};
 *   <li>the tokenizer's non-JSON files {@code merges.txt}, {@code vocab.txt}, {@code tokenizer.model} and chat
 *       templates {@code *.jinja}.
 * </ul>
 *
 * <p>Not covered: hidden files (names starting with {@code .}: temporaries, {@code .gitattributes}; engines glob
 * past them), sub-folders ({@code draft/} carries its own manifest, checked by {@code validate --draft}), and what
 * people or validate add beside a release: {@code README.md}, {@code LICENSE}, {@code validation.md}, the
 * validation plots. A file the manifest lists is hashed whether or not it is covered ({@code m2q-report.jsonl}).
 *
 * <p><b>Tensors.</b> When the manifest has a {@code tensors} section, every tensor of every {@code *.safetensors}
 * file in the folder is hashed and compared, always, not only when its file's hash differs: a manifest whose file
 * hash was updated but whose tensor hash was not is caught, and so is a tensor the manifest does not list. A release
 * manifest without the section fails {@link #verifyRelease}; {@link #verify} accepts it (EAGLE draft heads record
 * file hashes only).
 */
public final class Manifest {
    public static final String FILE = "m2q-manifest.json";

    /** The tokenizer's files that are not JSON (besides chat templates, {@code *.jinja}). */
    private static final List<String> TOKENIZER_FILES = List.of("merges.txt", "vocab.txt", "tokenizer.model");

    /** validate's own report, written into the candidate by default and so never listed. */
    private static final String VALIDATION_JSON = "validation.json";

    /** The version of the release manifest's layout ({@code format_version}). */
    public static final int FORMAT_VERSION = 1;

    /**
     * The parts of any m2q manifest (a release's, a draft head's, an attached head's) that {@link #verify} reads,
     * strictly typed: every hash a string, {@code files} required, {@code tensors} optional; the other keys are what
     * each writer records about itself.
     */
    @JsonIgnoreProperties(ignoreUnknown = true)
    private record Hashes(Map<String, String> files, Map<String, String> tensors) {}

    private static final ObjectReader HASHES =
            Json.mapper().readerFor(Hashes.class).without(DeserializationFeature.FAIL_ON_MISSING_CREATOR_PROPERTIES);

    /**
     * A release's manifest, as {@code m2q quantize} writes it.
     *
     * @param format the checkpoint format's id ("gptq", "auto_round", "compressed-tensors")
     * @param scheme the quantization scheme's label ("W4A16", …)
     * @param commandLine the user's arguments, without --resume and --overwrite
     * @param calibration the calibration set: its files, hash, tokens, samples and sequence length
     * @param kernels which results the kernels reproduce ("deterministic-java", or the backend's name)
     * @param files sha256 of every file of the release but this one, by name (sorted)
     * @param tensors sha256 of every tensor's bytes, by name (sorted)
     */
    public record Release(
            @JsonProperty("m2q_version") String m2qVersion,
            String format,
            String scheme,
            @JsonProperty("format_version") int formatVersion,
            String method,
            @JsonProperty("command_line") List<String> commandLine,
            Input input,
            Map<String, Object> calibration,
            long seed,
            String kernels,
            Map<String, String> files,
            Map<String, String> tensors) {}

    /**
     * @param model the BF16 model folder quantized
     * @param sha256 its files' sha256, by name (sorted)
     */
    public record Input(String model, Map<String, String> sha256) {}

    private Manifest() {}

    /** One file or tensor that is not what the manifest says. */
    public record Problem(String name, String rule, String detail) {
        @Override
        public String toString() {
            return name + ": " + detail;
        }
    }

    /**
     * @param present whether the folder has a manifest at all (third-party checkpoints have none)
     * @param files files whose hash was compared
     * @param tensors tensors whose hash was compared
     */
    public record Verification(boolean present, int files, int tensors, List<Problem> problems) {
        public boolean ok() {
            return present && problems.isEmpty();
        }
    }

    /** sha256 of every tensor's bytes in the checkpoint at {@code dir}, by name (sorted). */
    public static Map<String, String> tensorHashes(Path dir) {
        Map<String, String> out = new TreeMap<>();
        try (Checkpoint ck = Checkpoint.open(dir)) {
            for (String name : ck.names()) {
                out.put(name, Sha256.ofSegment(ck.tensor(name).data()));
            }
        }
        return out;
    }

    /**
     * Whether {@code dir}'s top-level file {@code name} must be listed in the manifest (the rule in the class
     * comment).
     */
    public static boolean covered(String name) {
        if (name.startsWith(".") || name.equals(FILE) || name.equals(VALIDATION_JSON)) {
            return false;
        }
        return name.endsWith(".safetensors")
                || name.endsWith(".json")
                || name.endsWith(".jinja")
                || TOKENIZER_FILES.contains(name);
    }

    /**
     * {@link #verify}, and a manifest without a {@code tensors} section is a problem: every m2q release records its
     * tensors' hashes, so a manifest without them was not written by m2q's quantizer or was cut down.
     */
    public static Verification verifyRelease(Path dir) {
        return verify(dir, true);
    }

    /**
     * Hashes every file the manifest in {@code dir} lists and compares; names every covered file that is on disk but
     * not listed; when the manifest lists tensor hashes, hashes every tensor of every safetensors file and names each
     * one that changed, is missing or is not listed.
     *
     * @throws InputException when the manifest exists but is not valid JSON of the expected shape
     */
    public static Verification verify(Path dir) {
        return verify(dir, false);
    }

    private static Verification verify(Path dir, boolean tensorsRequired) {
        Path file = dir.resolve(FILE);
        if (!Files.isRegularFile(file)) {
            return new Verification(false, 0, 0, List.of());
        }
        Hashes hashes;
        try {
            hashes = Json.read(Files.readString(file, StandardCharsets.UTF_8), HASHES);
        } catch (IOException e) {
            throw new InputException(file + ": cannot read: " + e.getMessage(), e);
        } catch (JsonException e) {
            throw new InputException(file + ": malformed JSON: " + e.getMessage(), e);
        }
        if (hashes.files() == null) {
            throw new InputException(file + ": has no \"files\" object of name → sha256");
        }
        Map<String, String> files = new TreeMap<>(hashes.files());
        Map<String, String> tensors = hashes.tensors() == null ? null : new TreeMap<>(hashes.tensors());
        List<Problem> problems = new ArrayList<>();
        Map<String, Sha256.OfShard> shardHashes = new TreeMap<>();
        int checked = 0;
        for (Map.Entry<String, String> e : files.entrySet()) {
            Path f = dir.resolve(e.getKey()).normalize();
            if (!f.startsWith(dir.normalize())) {
                throw new InputException(file + ": file entry \"" + e.getKey() + "\" points outside the folder");
            }
            if (!Files.isRegularFile(f)) {
                problems.add(new Problem(e.getKey(), "file missing", "listed in " + FILE + " but not on disk"));
                continue;
            }
            checked++;
            String actual = fileHash(f, e.getKey(), shardHashes);
            if (!actual.equalsIgnoreCase(e.getValue())) {
                problems.add(new Problem(
                        e.getKey(),
                        "file sha256",
                        "sha256 is " + actual + " but " + FILE + " records " + e.getValue()
                                + " (the file changed after m2q wrote it)"));
            }
        }
        List<String> shards = new ArrayList<>();
        for (String name : topLevelFiles(dir)) {
            if (name.endsWith(".safetensors")) {
                shards.add(name);
            }
            if (covered(name) && !files.containsKey(name)) {
                problems.add(new Problem(
                        name,
                        "file unlisted",
                        "not listed in " + FILE + ", so its bytes are unverified (a weight, config or tokenizer"
                                + " file added or changed after m2q wrote the release)"));
            }
        }
        int tensorCount = 0;
        if (tensors != null) {
            tensorCount = tensors(dir, shards, shardHashes, tensors, problems);
        } else if (tensorsRequired) {
            problems.add(new Problem(
                    FILE,
                    "tensors missing",
                    "has no \"tensors\" section, so no tensor's bytes can be verified (every m2q release records"
                            + " them; re-quantize or restore the manifest)"));
        }
        return new Verification(true, checked, tensorCount, List.copyOf(problems));
    }

    /**
     * A listed file's sha256. A shard is read once for its file hash and its tensors' hashes together (kept in
     * {@code shardHashes} for the tensor check); a shard that does not open as safetensors is hashed as bytes here
     * and reported as unreadable by the tensor check.
     */
    private static String fileHash(Path f, String name, Map<String, Sha256.OfShard> shardHashes) {
        if (name.endsWith(".safetensors") && !name.contains("/")) {
            try {
                Sha256.OfShard h = Sha256.ofShard(f);
                shardHashes.put(name, h);
                return h.file();
            } catch (InputException e) {
                return Sha256.ofFile(f);
            }
        }
        return Sha256.ofFile(f);
    }

    /** The folder's top-level regular files, sorted. */
    private static List<String> topLevelFiles(Path dir) {
        try (Stream<Path> s = Files.list(dir)) {
            return s.filter(Files::isRegularFile)
                    .map(p -> p.getFileName().toString())
                    .sorted()
                    .toList();
        } catch (IOException e) {
            throw new InputException(dir + ": cannot list: " + e.getMessage(), e);
        }
    }

    /**
     * Hashes every tensor of every shard and compares it with the manifest: a changed tensor, one the manifest lists
     * but no shard holds, and one a shard holds that the manifest does not list are each named.
     */
    private static int tensors(
            Path dir,
            List<String> shards,
            Map<String, Sha256.OfShard> hashed,
            Map<String, String> tensors,
            List<Problem> out) {
        int count = 0;
        Set<String> seen = new HashSet<>();
        for (String shard : shards) {
            Map<String, String> actualHashes;
            try {
                Sha256.OfShard h = hashed.get(shard);
                actualHashes = (h != null ? h : Sha256.ofShard(dir.resolve(shard))).tensors();
            } catch (InputException e) {
                out.add(new Problem(shard, "unreadable", "cannot be opened to hash its tensors: " + e.getMessage()));
                return count;
            }
            for (String name : new TreeSet<>(actualHashes.keySet())) {
                seen.add(name);
                String expected = tensors.get(name);
                if (expected == null) {
                    out.add(new Problem(
                            name, "tensor unlisted", "in " + shard + " but not listed in " + FILE + "'s tensors"));
                    continue;
                }
                count++;
                String actual = actualHashes.get(name);
                if (!actual.equalsIgnoreCase(expected)) {
                    out.add(new Problem(
                            name,
                            "tensor sha256",
                            "bytes changed: sha256 " + actual + ", " + FILE + " records " + expected + " (in " + shard
                                    + ")"));
                }
            }
        }
        for (String name : tensors.keySet()) {
            if (!seen.contains(name)) {
                out.add(new Problem(name, "tensor missing", "listed in " + FILE + " but in no shard"));
            }
        }
        return count;
    }
}
