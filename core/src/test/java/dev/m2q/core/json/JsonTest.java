package dev.m2q.core.json;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

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
    void nonFiniteFiguresAreWrittenAsNullAndReadBackAsNaN() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("nan", Double.NaN);
        m.put("inf", Float.NEGATIVE_INFINITY);
        m.put("x", 0.25);
        assertEquals("{\"nan\":null,\"inf\":null,\"x\":0.25}", Json.write(m));
        Figures back = Json.read(Json.write(new Figures("a", Double.NaN, Float.POSITIVE_INFINITY, 3)), Figures.class);
        assertTrue(Double.isNaN(back.value()) && Float.isNaN(back.f()), back.toString());
        assertEquals(
                new Figures("b", 1.5, 2.5f, 7), Json.read(Json.write(new Figures("b", 1.5, 2.5f, 7)), Figures.class));
    }

    record Figures(String name, double value, float f, int n) {}

    @Test
    void recordsAreReadStrictly() {
        String ok = "{\"name\":\"a\",\"value\":1.0,\"f\":2.0,\"n\":3}";
        assertEquals(new Figures("a", 1.0, 2.0f, 3), Json.read(ok, Figures.class));
        for (String bad : List.of(
                "{\"name\":\"a\",\"value\":1.0,\"f\":2.0,\"n\":3,\"extra\":1}",
                "{\"name\":\"a\",\"value\":1.0,\"f\":2.0}",
                "{\"name\":\"a\",\"value\":\"1.0\",\"f\":2.0,\"n\":3}",
                "{\"name\":\"a\",\"value\":1.0,\"f\":2.0,\"n\":null}",
                "{\"name\":\"a\",\"name\":\"b\",\"value\":1.0,\"f\":2.0,\"n\":3}",
                ok + " {}")) {
            JsonException e = assertThrows(JsonException.class, () -> Json.read(bad, Figures.class), bad);
            assertTrue(e.getMessage().contains("line 1, column"), e.getMessage());
        }
    }

    @Test
    void prettyOutputIndentsObjectsAndKeepsArraysOnOneLine() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("a", List.of(1L, 2L));
        m.put("b", Map.of("c", "d"));
        m.put("e", List.of());
        m.put("f", Map.of());
        assertEquals(
                "{\n  \"a\": [1, 2],\n  \"b\": {\n    \"c\": \"d\"\n  },\n  \"e\": [],\n  \"f\": {}\n}\n",
                Json.writePretty(m));
    }
}
