package dev.m2q.core.calib;

import dev.m2q.core.InputException;
import dev.m2q.core.io.InputText;
import dev.m2q.core.json.Json;
import dev.m2q.core.json.JsonException;
import dev.m2q.core.tokenizer.ChatTemplate;
import dev.m2q.core.tokenizer.Tokenizer;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * The calibration text as one token stream, and the seeded windows the layer-sequential pipeline calibrates on.
 *
 * <p>Inputs, per file, read through {@link InputText}: plain, gzip, xz, bzip2 or zstd text, or a tar of such files
 * (each member a text of its own, in archive order), detected by content. A JSON-lines text (named {@code .jsonl},
 * or whose first non-blank line is an object with a {@code "text"} or {@code "messages"} key: see
 * {@link InputText.Part#jsonLines}) holds one JSON object per non-blank line, either {@code {"text": "…"}} or
 * {@code {"messages": [{"role": "…", "content": "…"}, …]}} (a conversation, rendered through the model's chat
 * template without a generation prompt); other keys on a line are ignored. Any other text is one document: its
 * whole text, strictly UTF-8.
 *
 * <p>Documents are tokenized one by one and concatenated in file and line order. <b>Separator:</b> when the
 * tokenizer has an {@value #SEPARATOR} token, its id is placed between consecutive documents (not before the
 * first nor after the last), as Qwen2's pretraining packs documents; a tokenizer without it gets no separator.
 * Documents that encode to no tokens are skipped and not counted.
 *
 * <p><b>Cap:</b> at most {@link #MAX_TEXT_BYTES} bytes of text are read, over all files in order, so that a
 * calibration file larger than the heap is not read whole (it used to end in an OutOfMemoryError). The file (or tar
 * member) that crosses the cap is read up to its last complete line within it, and later files are not read; {@link #capped()}
 * then says so in one line. The cut depends only on the files' bytes, so the same files and options give the same
 * samples, and a set under the cap is read exactly as before.
 */
public final class CalibrationSet {
    /** The token placed between documents when the tokenizer has it. */
    public static final String SEPARATOR = "<|endoftext|>";

    /** The keys that make a file JSON lines by content ({@link InputText.Part#jsonLines}). */
    private static final Set<String> JSONL_KEYS = Set.of("text", "messages");

    /**
     * 32 MiB of text, about 8 million tokens: 32 times what the default 128 samples × 2048 tokens draw (and twice
     * 1024 × 4096), so the draw still spreads over plenty of text, while reading and tokenizing it fits the JVM's
     * default heap on any machine that can quantize a model. Measured on one 200 MiB file: 32 MiB tokenizes in a
     * 512 MiB heap (not in 384 MiB: the pre-tokenizer holds each word of a document as a string); 64 MiB needed
     * more than 256 MiB.
     */
    public static final long MAX_TEXT_BYTES = 32L << 20;

    /** The whole stream, documents and separators. */
    private final int[] tokens;

    private final int documents;

    /** What the cap left out, or null when every file was read whole. */
    private final String capped;

    private CalibrationSet(int[] tokens, int documents, String capped) {
        this.tokens = tokens;
        this.documents = documents;
        this.capped = capped;
    }

    /**
     * Reads, renders and tokenizes {@code files} in order, up to {@link #MAX_TEXT_BYTES} of text.
     *
     * @param chat the model's chat template, or null when it has none (then a conversation line is refused)
     * @throws InputException naming the file (and line) for a missing or unreadable file, invalid UTF-8, a malformed
     *     JSONL line, or a conversation when {@code chat} is null
     */
    public static CalibrationSet load(List<Path> files, Tokenizer tok, ChatTemplate chat) {
        return load(files, tok, chat, MAX_TEXT_BYTES);
    }

    /** As {@link #load(List, Tokenizer, ChatTemplate)} with another cap (tests use a small one). */
    static CalibrationSet load(List<Path> files, Tokenizer tok, ChatTemplate chat, long maxTextBytes) {
        if (files.isEmpty()) {
            throw new InputException("--calib: no calibration files given (pass a .txt or .jsonl file)");
        }
        OptionalInt separator = tok.tokenId(SEPARATOR);
        IntStream stream = new IntStream();
        int documents = 0;
        long budget = maxTextBytes;
        String cut = null;
        List<String> unread = new ArrayList<>();
        for (Path file : files) {
            if (budget == 0) {
                unread.add(file.toString());
                continue;
            }
            for (InputText.Part part : InputText.read(file, "calibration file", budget)) {
                budget -= part.bytesRead();
                if (part.cut()) {
                    budget = 0;
                    cut = "read the first " + mib(part.bytesRead()) + " of " + part.where() + " (" + part.size()
                            + "), up to its last complete line";
                }
                for (String doc : documentsOf(part, chat)) {
                    int[] ids = tok.encode(doc);
                    if (ids.length == 0) {
                        continue;
                    }
                    if (documents > 0 && separator.isPresent()) {
                        stream.add(separator.getAsInt());
                    }
                    stream.addAll(ids);
                    documents++;
                }
            }
        }
        String capped = cut == null && unread.isEmpty()
                ? null
                : "calibration text is capped at " + mib(maxTextBytes) + ": "
                        + (cut == null ? "" : cut + (unread.isEmpty() ? "" : "; "))
                        + (unread.isEmpty() ? "" : "not read: " + String.join(", ", unread))
                        + "; to calibrate on other text, pass a smaller file or a part of it";
        return new CalibrationSet(stream.toArray(), documents, capped);
    }

    /** One line saying what {@link #MAX_TEXT_BYTES} left out, when it left something out. */
    public Optional<String> capped() {
        return Optional.ofNullable(capped);
    }

    private static String mib(long bytes) {
        return InputText.mib(bytes);
    }

    /** Tokens in the stream, separators included. */
    public int totalTokens() {
        return tokens.length;
    }

    /** Documents that contributed tokens. */
    public int documents() {
        return documents;
    }

    /** A copy of the whole stream. */
    public int[] tokens() {
        return tokens.clone();
    }

    /** Lowercase hex SHA-256 of the stream, each token id as a 4-byte little-endian integer: names it in a manifest. */
    public String hash() {
        ByteBuffer bytes = ByteBuffer.allocate(tokens.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        bytes.asIntBuffer().put(tokens);
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes.array()));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("the JDK has no SHA-256", e);
        }
    }

    /**
     * How many samples a default count can draw: the windows to draw, and the one line saying so when the text is
     * short.
     *
     * @param nsamples the default count
     * @param note present when the stream holds fewer than the default count
     */
    public record Fit(int nsamples, Optional<String> note) {}

    /**
     * The count to draw when {@code nsamples} is a default rather than the user's request: all of it when the stream
     * holds {@code nsamples} whole non-overlapping windows of {@code seqlen} tokens, else as many as it holds, with a
     * line saying so. A stream shorter than one window keeps the default, which {@link #sample} then refuses with
     * both counts.
     */
    public Fit fit(int nsamples, int seqlen) {
        if (nsamples <= 0 || seqlen <= 0) {
            throw new IllegalArgumentException(
                    "nsamples and seqlen must be positive, got " + nsamples + " and " + seqlen);
        }
        int held = tokens.length / seqlen;
        if (held >= nsamples || held == 0) {
            return new Fit(nsamples, Optional.empty());
        }
        return new Fit(
                held,
                Optional.of("calibration: text holds " + held + " samples of " + seqlen + " tokens, using " + held
                        + " (default " + nsamples + ")"));
    }

    /**
     * {@code nsamples} windows of exactly {@code seqlen} consecutive tokens of the stream, which may span document
     * boundaries. <b>Windows never overlap:</b> with slack {@code s = total − nsamples·seqlen}, the method draws
     * {@code nsamples} offsets uniformly from {@code [0, s]} with {@code SplittableRandom(seed)}, sorts them and
     * starts window i at {@code offset_i + i·seqlen}; so every start lies in {@code [0, total − seqlen]}. The
     * windows are then shuffled with the same generator. The same seed gives the same windows.
     *
     * @throws InputException when the stream is shorter than {@code nsamples·seqlen}, naming both counts
     * @throws IllegalArgumentException when nsamples or seqlen is not positive
     */
    public List<int[]> sample(int nsamples, int seqlen, long seed) {
        if (nsamples <= 0 || seqlen <= 0) {
            throw new IllegalArgumentException(
                    "nsamples and seqlen must be positive, got " + nsamples + " and " + seqlen);
        }
        long needed = (long) nsamples * seqlen;
        if (needed > tokens.length) {
            throw new InputException("calibration set too small: it has " + tokens.length + " tokens in "
                    + documents + " documents, and " + nsamples + " non-overlapping samples of " + seqlen
                    + " tokens need " + needed + " (--nsamples × --seqlen); pass a smaller --nsamples or --seqlen, or"
                    + " more calibration text");
        }
        int[] starts = starts(nsamples, seqlen, seed);
        List<int[]> windows = new ArrayList<>(nsamples);
        for (int start : starts) {
            windows.add(Arrays.copyOfRange(tokens, start, start + seqlen));
        }
        return List.copyOf(windows);
    }

    /** The start of each window {@link #sample} returns, in the same order; the size was checked. */
    int[] starts(int nsamples, int seqlen, long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        long slack = tokens.length - (long) nsamples * seqlen;
        long[] offsets = new long[nsamples];
        for (int i = 0; i < nsamples; i++) {
            offsets[i] = random.nextLong(slack + 1);
        }
        Arrays.sort(offsets);
        int[] starts = new int[nsamples];
        for (int i = 0; i < nsamples; i++) {
            starts[i] = Math.toIntExact(offsets[i] + (long) i * seqlen);
        }
        for (int i = nsamples - 1; i > 0; i--) {
            int j = random.nextInt(i + 1);
            int t = starts[i];
            starts[i] = starts[j];
            starts[j] = t;
        }
        return starts;
    }

    private static List<String> documentsOf(InputText.Part part, ChatTemplate chat) {
        if (!part.jsonLines(JSONL_KEYS)) {
            return List.of(part.text());
        }
        List<String> docs = new ArrayList<>();
        String[] lines = part.text().split("\n", -1);
        for (int i = 0; i < lines.length; i++) {
            String line = lines[i].strip();
            if (!line.isEmpty()) {
                docs.add(jsonlDocument(line, part.where() + ":" + (i + 1), chat));
            }
        }
        return docs;
    }

    /** The document of one JSONL line; {@code where} is "file:line". */
    private static String jsonlDocument(String line, String where, ChatTemplate chat) {
        Map<String, Object> obj;
        try {
            obj = Json.parseObject(line);
        } catch (JsonException e) {
            throw new InputException(where + ": not a JSON object: " + e.getMessage()
                    + " (each line must be {\"text\": …} or {\"messages\": […]})");
        }
        boolean hasText = obj.containsKey("text");
        boolean hasMessages = obj.containsKey("messages");
        if (hasText == hasMessages) {
            throw new InputException(where + ": needs exactly one of \"text\" and \"messages\", found "
                    + (hasText ? "both" : "neither"));
        }
        if (hasText) {
            if (!(obj.get("text") instanceof String s)) {
                throw new InputException(where + ": \"text\" must be a string");
            }
            return s;
        }
        if (!(obj.get("messages") instanceof List<?> list) || list.isEmpty()) {
            throw new InputException(where + ": \"messages\" must be a non-empty list of {\"role\", \"content\"}");
        }
        if (chat == null) {
            throw new InputException(where + ": a \"messages\" conversation needs a chat template, and the model's"
                    + " tokenizer_config.json has none; use {\"text\": …} lines instead");
        }
        List<ChatTemplate.Message> messages = new ArrayList<>();
        for (int m = 0; m < list.size(); m++) {
            if (!(list.get(m) instanceof Map<?, ?> msg)
                    || !(msg.get("role") instanceof String role)
                    || !(msg.get("content") instanceof String content)) {
                throw new InputException(
                        where + ": messages[" + m + "] must be an object with string \"role\" and \"content\"");
            }
            messages.add(new ChatTemplate.Message(role, content));
        }
        return chat.render(messages, false);
    }

    /** A growable int array. */
    private static final class IntStream {
        private int[] a = new int[1024];
        private int n;

        void add(int v) {
            if (n == a.length) {
                a = Arrays.copyOf(a, n * 2);
            }
            a[n++] = v;
        }

        void addAll(int[] vs) {
            if (n + vs.length > a.length) {
                a = Arrays.copyOf(a, Math.max(a.length * 2, n + vs.length));
            }
            System.arraycopy(vs, 0, a, n, vs.length);
            n += vs.length;
        }

        int[] toArray() {
            return Arrays.copyOf(a, n);
        }
    }
}
