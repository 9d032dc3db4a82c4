package dev.m2q.eagle.train;

import com.fasterxml.jackson.annotation.JsonProperty;
import dev.m2q.core.InputException;
import dev.m2q.core.grad.Tensor;
import dev.m2q.core.io.AtomicFile;
import dev.m2q.core.io.Checkpoint;
import dev.m2q.core.io.OutputException;
import dev.m2q.core.io.SafetensorsWriter;
import dev.m2q.core.io.Sha256;
import dev.m2q.core.io.TensorView;
import dev.m2q.core.json.Json;
import dev.m2q.core.json.JsonException;
import dev.m2q.core.tensor.DType;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/**
 * A training run's saved state in {@code OUT/checkpoint/}: {@code state-STEP.safetensors} holds, F32, every
 * parameter ({@code param.NAME}) and Adam's moments ({@code adam_m.NAME}, {@code adam_v.NAME}) at their [rows,
 * cols] shapes; {@code state.json} names that file with its sha256, the step, and the run's fingerprint (options,
 * data and target hashes) that {@code --resume} must match. The data order needs no saved state: step s's batch is a
 * function of the seed and s ({@link DraftTrainer#batch}). state.json is written last, through a temporary name
 * and a rename, so it always describes a complete file.
 *
 * @param step the number of optimizer steps done
 * @param params parameters by name
 * @param first Adam's first moments by name
 * @param second Adam's second moments by name
 */
public record TrainCheckpoint(
        int step, Map<String, Tensor> params, Map<String, float[]> first, Map<String, float[]> second) {
    public static final String DIR = "checkpoint";
    public static final String STATE = "state.json";
    public static final String FORMAT = "m2q-eagle-train-state";
    public static final int VERSION = 1;

    /**
     * {@code state.json}.
     *
     * @param tensors the state file's name in the checkpoint folder
     * @param fingerprint the run's options, data and target hashes, as the trainer gave them
     */
    record State(
            String format,
            @JsonProperty("format_version") int formatVersion,
            int step,
            String tensors,
            @JsonProperty("tensors_sha256") String tensorsSha256,
            Map<String, Object> fingerprint) {}

    /** Saves into {@code dir}, replacing an older state; {@code fingerprint} is stored for {@link #load}. */
    public void save(Path dir, Map<String, Object> fingerprint) {
        List<TensorView> tensors = new ArrayList<>();
        for (var e : params.entrySet()) {
            Tensor p = e.getValue();
            long[] shape = {p.rows(), p.cols()};
            float[] data = new float[p.size()];
            for (int i = 0; i < data.length; i++) {
                data[i] = (float) p.get(i);
            }
            tensors.add(f32("param." + e.getKey(), shape, data));
            tensors.add(f32("adam_m." + e.getKey(), shape, first.get(e.getKey())));
            tensors.add(f32("adam_v." + e.getKey(), shape, second.get(e.getKey())));
        }
        String name = "state-" + step + ".safetensors";
        String sha = SafetensorsWriter.writeFile(dir.resolve(name), tensors, Map.of("format", FORMAT));
        AtomicFile.writeText(
                dir.resolve(STATE), Json.writePretty(new State(FORMAT, VERSION, step, name, sha, fingerprint)));
        try {
            try (Stream<Path> old = Files.list(dir)) {
                for (Path f : old.toList()) {
                    String n = f.getFileName().toString();
                    if (n.startsWith("state-") && n.endsWith(".safetensors") && !n.equals(name)) {
                        Files.delete(f);
                    }
                }
            }
        } catch (IOException e) {
            throw new OutputException(dir + ": cannot delete an older checkpoint: " + e.getMessage(), e);
        }
    }

    /**
     * Loads the state in {@code dir}, refusing one whose fingerprint differs from {@code fingerprint} (other options,
     * data or target) or whose tensors do not match their recorded sha256.
     */
    public static TrainCheckpoint load(Path dir, Map<String, Object> fingerprint) {
        Path file = dir.resolve(STATE);
        if (!Files.isRegularFile(file)) {
            throw new InputException(
                    dir + ": no " + STATE + " to resume from (no checkpoint was written; train without" + " --resume)");
        }
        State state;
        try {
            state = Json.read(Files.readString(file, StandardCharsets.UTF_8), State.class);
        } catch (IOException e) {
            throw new InputException(file + ": cannot read: " + e.getMessage(), e);
        } catch (JsonException e) {
            throw new InputException(file + ": malformed JSON: " + e.getMessage(), e);
        }
        if (!FORMAT.equals(state.format()) || state.formatVersion() != VERSION || state.tensors() == null) {
            throw new InputException(file + ": not an " + FORMAT + " version " + VERSION + " file");
        }
        String saved = Json.write(state.fingerprint());
        String now = Json.write(Json.parse(Json.write(fingerprint)));
        if (!saved.equals(now)) {
            throw new InputException(file + ": the checkpoint was made with other options, data or target ("
                    + differences(state.fingerprint(), Json.parse(now)) + "); rerun with the same ones or"
                    + " start over with --overwrite");
        }
        Path tensorsFile = dir.resolve(state.tensors()).normalize();
        if (!tensorsFile.getParent().equals(dir.normalize())
                || !Files.isRegularFile(tensorsFile)
                || !Sha256.ofFile(tensorsFile).equalsIgnoreCase(state.tensorsSha256())) {
            throw new InputException(tensorsFile + ": missing or not the file " + STATE + " recorded (sha256 differs)");
        }
        int step = state.step();
        Map<String, Tensor> params = new LinkedHashMap<>();
        Map<String, float[]> first = new LinkedHashMap<>();
        Map<String, float[]> second = new LinkedHashMap<>();
        try (Checkpoint ck = Checkpoint.open(tensorsFile)) {
            for (String n : ck.names()) {
                if (!n.startsWith("param.")) {
                    continue;
                }
                String key = n.substring("param.".length());
                TensorView t = ck.tensor(n).requireDtype(DType.F32);
                long[] s = t.shape();
                params.put(key, new Tensor.F32(t.toFloatArray(), (int) s[0], (int) s[1]));
                first.put(key, ck.tensor("adam_m." + key).requireShape(s).toFloatArray());
                second.put(key, ck.tensor("adam_v." + key).requireShape(s).toFloatArray());
            }
        }
        return new TrainCheckpoint(step, params, first, second);
    }

    private static String differences(Object saved, Object now) {
        if (saved instanceof Map<?, ?> a && now instanceof Map<?, ?> b) {
            List<String> d = new ArrayList<>();
            for (Object k : a.keySet()) {
                if (!String.valueOf(a.get(k)).equals(String.valueOf(b.get(k)))) {
                    d.add(k + " was " + a.get(k) + ", now " + b.get(k));
                }
            }
            for (Object k : b.keySet()) {
                if (!a.containsKey(k)) {
                    d.add(k + " is new");
                }
            }
            return String.join("; ", d);
        }
        return "fingerprint differs";
    }

    private static TensorView f32(String name, long[] shape, float[] data) {
        ByteBuffer b = ByteBuffer.allocate(data.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (float f : data) {
            b.putFloat(f);
        }
        return new TensorView(name, DType.F32, shape, MemorySegment.ofArray(b.array()));
    }
}
