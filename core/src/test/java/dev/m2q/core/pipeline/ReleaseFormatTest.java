package dev.m2q.core.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.InputException;
import dev.m2q.core.json.Json;
import dev.m2q.core.quant.Bits;
import dev.m2q.core.quant.QuantScheme;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The two labels of the GPTQ layout: exactly FORMATS.md §2's and §3's keys, method keys merged in a fixed order;
 * --format and a config's quant_method name one format each.
 */
class ReleaseFormatTest {
    static ReleaseFormat.Keys keys(int groupSize, Map<String, Object> methodKeys, String method) {
        return new ReleaseFormat.Keys(Bits.FOUR, groupSize, QuantScheme.W4A16, methodKeys, method, "1.2.3");
    }

    @Test
    void autoRoundConfigHasFormats3Keys() {
        Map<String, Object> keys = new LinkedHashMap<>();
        keys.put("seqlen", 512);
        keys.put("iters", 200);
        keys.put("nsamples", 64);
        keys.put("lr", 0.005);
        keys.put("minmax_lr", 0.005);
        Map<String, Object> qc = GptqRelease.AUTO_ROUND.quantizationConfig(keys(128, keys, "autoround"));
        assertEquals(
                List.of(
                        "quant_method",
                        "packing_format",
                        "bits",
                        "group_size",
                        "sym",
                        "data_type",
                        "iters",
                        "lr",
                        "minmax_lr",
                        "nsamples",
                        "seqlen",
                        "autoround_version"),
                List.copyOf(qc.keySet()));
        assertEquals("auto-round", qc.get("quant_method"));
        assertEquals("auto_round:auto_gptq", qc.get("packing_format"));
        assertEquals(4, qc.get("bits"));
        assertEquals(128, qc.get("group_size"));
        assertEquals(true, qc.get("sym"));
        assertEquals("int", qc.get("data_type"));
        assertEquals(200, qc.get("iters"));
        assertEquals("1.2.3", qc.get("autoround_version"));
        assertEquals(
                "quantization_config.json", GptqRelease.AUTO_ROUND.configFile().orElseThrow());
    }

    @Test
    void gptqConfigHasFormats2KeysWithTheMethodsOverTheDefaults() {
        Map<String, Object> qc =
                GptqRelease.GPTQ.quantizationConfig(keys(64, Map.of("desc_act", true, "damp_percent", 0.02), "gptq"));
        assertEquals("gptq", qc.get("quant_method"));
        assertEquals(64, qc.get("group_size"));
        assertEquals(true, qc.get("desc_act"), "the method's value replaces the default");
        assertEquals(0.02, qc.get("damp_percent"));
        assertEquals("gptq", qc.get("checkpoint_format"));
        assertEquals("int32", qc.get("pack_dtype"));
        assertEquals(Map.of("quantizer", List.of("m2q:1.2.3"), "method", "gptq"), qc.get("meta"));
        for (String key : List.of("bits", "group_size", "sym", "desc_act")) {
            assertTrue(qc.containsKey(key), "vLLM needs " + key);
        }
        assertEquals("quantize_config.json", GptqRelease.GPTQ.configFile().orElseThrow());
    }

    @Test
    void unknownFormatIsBadInputNamingTheChoices() {
        assertEquals(GptqRelease.AUTO_ROUND, ReleaseFormat.byName("auto_round"));
        assertEquals(GptqRelease.GPTQ, ReleaseFormat.byName("gptq"));
        assertEquals(CompressedTensorsRelease.NO_ACT_ORDER, ReleaseFormat.byName("compressed-tensors"));
        String msg = assertThrows(InputException.class, () -> ReleaseFormat.byName("awq"))
                .getMessage();
        assertTrue(msg.contains("gptq, auto_round, compressed-tensors"), msg);
    }

    @Test
    void aConfigNamesItsFormatAndActOrder() {
        assertEquals(GptqRelease.GPTQ, ReleaseFormat.of(Map.of("quant_method", "gptq")));
        assertEquals(
                GptqRelease.AUTO_ROUND,
                ReleaseFormat.of(Map.of("quant_method", "auto-round", "packing_format", "auto_round:auto_gptq")));
        assertEquals(
                GptqRelease.AUTO_ROUND,
                ReleaseFormat.of(Map.of("quant_method", "intel/auto-round", "packing_format", "auto_gptq")));
        for (CompressedTensorsRelease.ActOrder a : CompressedTensorsRelease.ActOrder.values()) {
            CompressedTensorsRelease ct = new CompressedTensorsRelease(a);
            Object qc = Json.parseObject(Json.write(ct.quantizationConfig(keys(128, Map.of(), "gptq"))));
            assertEquals(ct, ReleaseFormat.of((Map<?, ?>) qc), a.name());
        }
        assertThrows(
                InputException.class,
                () -> ReleaseFormat.of(Map.of("quant_method", "auto-round", "packing_format", "auto_round:auto_awq")));
        assertThrows(InputException.class, () -> ReleaseFormat.of(Map.of("quant_method", "awq")));
    }
}
