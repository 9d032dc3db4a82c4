package dev.m2q.core.json;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class JsonTest {
    @Test
    void parsesEveryKindOfValue() {
        Object v = Json.parse(
                " {\"a\": [1, -2, 3.5, 1e2, true, false, null], \"b\": \"x\\u00e9\\n\\\"\", \"c\": {}, \"d\": 9223372036854775807}");
        Map<String, Object> expected = new LinkedHashMap<>();
        java.util.List<Object> a = new java.util.ArrayList<>(List.of(1L, -2L, 3.5, 100.0, true, false));
        a.add(null);
        expected.put("a", a);
        expected.put("b", "xé\n\"");
        expected.put("c", Map.of());
        expected.put("d", Long.MAX_VALUE);
        assertEquals(expected, v);
    }

    @Test
    void roundTripsThroughTheWriter() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("s", "tab\there \u0001 \"q\" \\");
        m.put("l", List.of(1L, 2.5, "z"));
        m.put("n", null);
        m.put("arr", new long[] {3, 4});
        Object back = Json.parse(Json.writePretty(m));
        m.put("arr", List.of(3L, 4L));
        assertEquals(m, back);
        assertEquals(m, Json.parse(Json.write(m)));
    }

    @Test
    void rejectsMalformedInput() {
        for (String bad : List.of(
                "",
                "{",
                "{\"a\":1,}",
                "[1 2]",
                "{\"a\":1}x",
                "{\"a\":1,\"a\":2}",
                "01",
                "1.",
                "\"\\x\"",
                "\"a",
                "nul",
                "{1:2}",
                "\"\u0001\"",
                "[".repeat(300) + "]".repeat(300))) {
            assertThrows(JsonException.class, () -> Json.parse(bad), bad);
        }
    }

    @Test
    void nonFiniteFiguresBecomeNullAndTheWriterStillRefusesThemRaw() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("nan", Json.finiteOrNull(Double.NaN));
        m.put("inf", Json.finiteOrNull(Double.NEGATIVE_INFINITY));
        m.put("x", Json.finiteOrNull(0.25));
        assertEquals("{\"nan\":null,\"inf\":null,\"x\":0.25}", Json.write(m));
        assertThrows(IllegalArgumentException.class, () -> Json.write(List.of(Double.NaN)));
    }
}
