package dev.m2q.core.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.InputException;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The two labels of the GPTQ layout: exactly FORMATS.md §2's and §3's keys, method keys merged in a fixed order. */
class ReleaseFormatTest {
    @Test
    void autoRoundConfigHasFormats3Keys() {
        Map<String, Object> keys = new LinkedHashMap<>();
        keys.put("seqlen", 512);
        keys.put("iters", 200);
        keys.put("nsamples", 64);
        keys.put("lr", 0.005);
        keys.put("minmax_lr", 0.005);
        Map<String, Object> qc = ReleaseFormat.AUTO_ROUND.quantizationConfig(128, keys, "autoround", "1.2.3");
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
        assertEquals("quantization_config.json", ReleaseFormat.AUTO_ROUND.configFile());
    }

    @Test
    void gptqConfigHasFormats2KeysWithTheMethodsOverTheDefaults() {
        Map<String, Object> qc = ReleaseFormat.GPTQ.quantizationConfig(
                64, Map.of("desc_act", true, "damp_percent", 0.02), "gptq", "1.2.3");
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
        assertEquals("quantize_config.json", ReleaseFormat.GPTQ.configFile());
    }

    @Test
    void unknownFormatIsBadInputNamingTheChoices() {
        assertEquals(ReleaseFormat.AUTO_ROUND, ReleaseFormat.byName("auto_round"));
        String msg = assertThrows(InputException.class, () -> ReleaseFormat.byName("awq"))
                .getMessage();
        assertTrue(msg.contains("gptq, auto_round"), msg);
    }
}
