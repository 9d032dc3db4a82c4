package dev.m2q.core.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.m2q.core.kernels.Matrix;
import java.util.List;
import org.junit.jupiter.api.Test;

class ProjTest {
    @Test
    void shapesAtQwen25_32B() {
        // hidden 5120, 40 query heads × 128, 8 KV heads × 128, MLP 27648: [out, in] as in the checkpoint
        ModelConfig c = ModelConfig.parse(ModelConfigTest.qwen32b());
        assertArrayEquals(new long[] {5120, 5120}, Proj.Q.shape(c));
        assertArrayEquals(new long[] {1024, 5120}, Proj.K.shape(c));
        assertArrayEquals(new long[] {1024, 5120}, Proj.V.shape(c));
        assertArrayEquals(new long[] {5120, 5120}, Proj.O.shape(c));
        assertArrayEquals(new long[] {27648, 5120}, Proj.GATE.shape(c));
        assertArrayEquals(new long[] {27648, 5120}, Proj.UP.shape(c));
        assertArrayEquals(new long[] {5120, 27648}, Proj.DOWN.shape(c));
        for (Proj p : Proj.values()) {
            assertArrayEquals(p.shape(c), c.expectedShapes().get("model.layers.0." + p.weight()), p.path());
        }
    }

    @Test
    void namesGroupsAndSplits() {
        assertEquals(
                List.of(Proj.values()),
                Proj.GROUPS.stream().flatMap(List::stream).toList());
        assertEquals(
                List.of(
                        "self_attn.q_proj",
                        "self_attn.k_proj",
                        "self_attn.v_proj",
                        "self_attn.o_proj",
                        "mlp.gate_proj",
                        "mlp.up_proj",
                        "mlp.down_proj"),
                ArchSpec.forArchitecture("Qwen2ForCausalLM").linears());
        assertEquals(
                List.of(Proj.O, Proj.DOWN),
                List.of(Proj.values()).stream().filter(Proj::rowParallel).toList());
        assertSame(Proj.UP, Proj.of("mlp.up_proj"));
        assertSame(Proj.O, Proj.ofModule("model.layers.12.self_attn.o_proj"));
        assertNull(Proj.ofModule("model.layers.12.self_attn.xo_proj"));
        assertThrows(IllegalArgumentException.class, () -> Proj.of("up_proj"));
    }

    @Test
    void weightsReplaceAndReadEachLinearByItsProj() {
        Matrix[] m = new Matrix[7];
        for (int i = 0; i < 7; i++) {
            m[i] = new Matrix.F32(new float[] {i}, 1, 1);
        }
        float[] n1 = {1f};
        float[] n2 = {2f};
        DecoderLayer.Weights w =
                new DecoderLayer.Weights(n1, m[0], null, m[1], null, m[2], null, m[3], n2, m[4], m[5], m[6]);
        Matrix other = new Matrix.F32(new float[] {9f}, 1, 1);
        for (Proj p : Proj.values()) {
            assertSame(m[p.ordinal()], w.linear(p.path()), p.path());
            DecoderLayer.Weights r = w.with(p.path(), other);
            for (Proj q : Proj.values()) {
                assertSame(q == p ? other : m[q.ordinal()], r.linear(q), p + " replaced, reading " + q);
            }
            assertSame(n1, r.inputNorm());
            assertSame(n2, r.postNorm());
        }
    }
}
