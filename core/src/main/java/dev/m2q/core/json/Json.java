package dev.m2q.core.json;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.core.util.DefaultIndenter;
import com.fasterxml.jackson.core.util.DefaultPrettyPrinter;
import com.fasterxml.jackson.core.util.Separators;
import com.fasterxml.jackson.databind.DeserializationContext;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.ObjectReader;
import com.fasterxml.jackson.databind.ObjectWriter;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.SerializerProvider;
import com.fasterxml.jackson.databind.cfg.CoercionAction;
import com.fasterxml.jackson.databind.cfg.CoercionInputShape;
import com.fasterxml.jackson.databind.deser.std.StdScalarDeserializer;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.module.SimpleModule;
import com.fasterxml.jackson.databind.ser.std.StdScalarSerializer;
import com.fasterxml.jackson.databind.type.LogicalType;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The one JSON library configuration of m2q (Jackson), for every file it reads or writes: reports and manifests as
 * typed records, untrusted safetensors headers and configs as trees.
 *
 * <ul>
 *   <li><b>Strict on read</b>, because headers, configs and reports come from files: a duplicate key, trailing
 *       characters after the value, nesting deeper than {@value #MAX_DEPTH}, NaN or Infinity tokens, and (for
 *       records) an unknown key or a missing or wrongly typed field are errors. Every error is a {@link
 *       JsonException} that names the line and column.
 *   <li><b>Non-finite figures are null.</b> JSON cannot say NaN or ±Inf, so a double or float that is not finite is
 *       written as {@code null}, and a {@code null} read into a {@code double} or {@code float} field is NaN again.
 *       A report whose figure is undefined therefore still writes, and the check that reads it fails (exit 1)
 *       instead of the writer crashing.
 *   <li>Trees: objects become {@code LinkedHashMap<String, Object>} in file order, arrays {@code ArrayList},
 *       integers {@code Long} ({@code BigInteger} past 64 bits), other numbers {@code Double}.
 *   <li>Pretty output indents objects by two spaces and keeps arrays on one line, for files people read.
 * </ul>
 */
public final class Json {
    /** The deepest nesting a file may have. */
    public static final int MAX_DEPTH = 256;

    private static final ObjectMapper MAPPER = build();
    private static final ObjectWriter PRETTY = MAPPER.writer(prettyPrinter());

    private Json() {}

    private static ObjectMapper build() {
        JsonFactory factory = JsonFactory.builder()
                .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
                .streamReadConstraints(StreamReadConstraints.builder()
                        .maxNestingDepth(MAX_DEPTH)
                        .build())
                .build();
        SimpleModule nonFinite = new SimpleModule("m2q-non-finite");
        nonFinite.addSerializer(Double.class, new NonFiniteAsNull<>(Double.class));
        nonFinite.addSerializer(Double.TYPE, new NonFiniteAsNull<>(Double.class));
        nonFinite.addSerializer(Float.class, new NonFiniteAsNull<>(Float.class));
        nonFinite.addSerializer(Float.TYPE, new NonFiniteAsNull<>(Float.class));
        nonFinite.addDeserializer(Double.TYPE, new NullAsNaN<>(Double.TYPE));
        nonFinite.addDeserializer(Float.TYPE, new NullAsNaN<>(Float.TYPE));
        JsonMapper mapper = JsonMapper.builder(factory)
                .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
                .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
                .enable(DeserializationFeature.FAIL_ON_MISSING_CREATOR_PROPERTIES)
                .enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES)
                .disable(SerializationFeature.FAIL_ON_EMPTY_BEANS)
                .addModule(nonFinite)
                .build();
        // A number or boolean where a record wants a string is a wrong type, not a string to make of it.
        mapper.coercionConfigFor(LogicalType.Textual)
                .setCoercion(CoercionInputShape.Integer, CoercionAction.Fail)
                .setCoercion(CoercionInputShape.Float, CoercionAction.Fail)
                .setCoercion(CoercionInputShape.Boolean, CoercionAction.Fail);
        return mapper;
    }

    private static DefaultPrettyPrinter prettyPrinter() {
        Separators separators = Separators.createDefaultInstance()
                .withObjectFieldValueSpacing(Separators.Spacing.AFTER)
                .withArrayValueSpacing(Separators.Spacing.AFTER)
                .withObjectEmptySeparator("")
                .withArrayEmptySeparator("");
        DefaultPrettyPrinter p = new DefaultPrettyPrinter(separators);
        p.indentObjectsWith(new DefaultIndenter("  ", "\n"));
        p.indentArraysWith(new DefaultPrettyPrinter.NopIndenter());
        return p;
    }

    /** The configured mapper, for callers that stream or need a generic type. */
    public static ObjectMapper mapper() {
        return MAPPER;
    }

    /** Parses one JSON value that must fill the whole text (whitespace aside), as a tree of maps and lists. */
    public static Object parse(String text) {
        try {
            return untyped(MAPPER.readTree(text));
        } catch (JacksonException e) {
            throw error(e);
        }
    }

    private static Object untyped(JsonNode n) {
        return switch (n.getNodeType()) {
            case OBJECT -> {
                Map<String, Object> m = new LinkedHashMap<>();
                for (var e : n.properties()) {
                    m.put(e.getKey(), untyped(e.getValue()));
                }
                yield m;
            }
            case ARRAY -> {
                List<Object> l = new ArrayList<>(n.size());
                for (JsonNode e : n) {
                    l.add(untyped(e));
                }
                yield l;
            }
            case NUMBER ->
                n.isIntegralNumber()
                        ? (n.canConvertToLong() ? (Object) n.longValue() : n.bigIntegerValue())
                        : (Object) n.doubleValue();
            case STRING -> n.textValue();
            case BOOLEAN -> n.booleanValue();
            case NULL -> null;
            case MISSING -> throw new JsonException("no JSON value in the text");
            case BINARY, POJO -> throw new JsonException("unexpected node " + n.getNodeType());
        };
    }

    /** Parses a JSON object; anything else is an error. */
    @SuppressWarnings("unchecked")
    public static Map<String, Object> parseObject(String text) {
        Object v = parse(text);
        if (!(v instanceof Map)) {
            throw new JsonException("expected a JSON object at the top level");
        }
        return (Map<String, Object>) v;
    }

    /** Reads {@code text} as a {@code type} (a record, usually), strictly. */
    public static <T> T read(String text, Class<T> type) {
        try {
            return MAPPER.readValue(text, type);
        } catch (JacksonException e) {
            throw error(e);
        }
    }

    /** Reads the file as a {@code type}, strictly; a malformed file's message starts with its path. */
    public static <T> T read(Path file, Class<T> type) throws IOException {
        String text = Files.readString(file, StandardCharsets.UTF_8);
        try {
            return MAPPER.readValue(text, type);
        } catch (JacksonException e) {
            throw new JsonException(file + ": " + error(e).getMessage());
        }
    }

    /**
     * Reads {@code text} with {@code reader}, a reader of {@link #mapper()} configured otherwise (a missing field
     * allowed, say); errors as {@link #read(String, Class)}'s.
     */
    public static <T> T read(String text, ObjectReader reader) {
        try {
            return reader.readValue(text);
        } catch (JacksonException e) {
            throw error(e);
        }
    }

    /** Compact JSON text of a record, map, list, string, number, boolean or null. */
    public static String write(Object v) {
        try {
            return MAPPER.writeValueAsString(v);
        } catch (JacksonException e) {
            throw new IllegalArgumentException("not writable as JSON: " + e.getOriginalMessage(), e);
        }
    }

    /** Indented JSON text with a final newline, for files people read. */
    public static String writePretty(Object v) {
        try {
            return PRETTY.writeValueAsString(v) + "\n";
        } catch (JacksonException e) {
            throw new IllegalArgumentException("not writable as JSON: " + e.getOriginalMessage(), e);
        }
    }

    private static JsonException error(JacksonException e) {
        var loc = e.getLocation();
        String where = loc == null ? "" : " at line " + loc.getLineNr() + ", column " + loc.getColumnNr();
        String what = e.getOriginalMessage();
        int nl = what.indexOf('\n');
        return new JsonException((nl < 0 ? what : what.substring(0, nl)) + where);
    }

    /** A double or float, written as a JSON number when finite and as null when not. */
    private static final class NonFiniteAsNull<T extends Number> extends StdScalarSerializer<T> {
        NonFiniteAsNull(Class<T> type) {
            super(type);
        }

        @Override
        public void serialize(T v, JsonGenerator g, SerializerProvider p) throws IOException {
            if (!Double.isFinite(v.doubleValue())) {
                g.writeNull();
            } else if (v instanceof Float f) {
                g.writeNumber(f);
            } else {
                g.writeNumber(v.doubleValue());
            }
        }
    }

    /**
     * A JSON number into a double or float field; null is NaN (what the writer made of a non-finite figure); anything
     * else is an error.
     */
    private static final class NullAsNaN<T extends Number> extends StdScalarDeserializer<T> {
        private final T nan;
        private final boolean single;

        @SuppressWarnings("unchecked")
        NullAsNaN(Class<T> primitive) {
            super(primitive);
            this.single = primitive == Float.TYPE;
            this.nan = (T) (single ? (Number) Float.NaN : (Number) Double.NaN);
        }

        @Override
        @SuppressWarnings("unchecked")
        public T deserialize(JsonParser p, DeserializationContext ctxt) throws IOException {
            JsonToken t = p.currentToken();
            if (t == JsonToken.VALUE_NUMBER_INT || t == JsonToken.VALUE_NUMBER_FLOAT) {
                return (T) (single ? (Number) p.getFloatValue() : (Number) p.getDoubleValue());
            }
            return (T) ctxt.handleUnexpectedToken(handledType(), p);
        }

        @Override
        public T getNullValue(DeserializationContext ctxt) {
            return nan;
        }
    }
}
