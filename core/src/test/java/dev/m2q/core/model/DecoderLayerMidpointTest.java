package dev.m2q.core.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.kernels.Backend;
import dev.m2q.core.kernels.Backend.Buf;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.ScalarKernels;
import dev.m2q.core.kernels.VectorKernels;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * A pass that starts at a {@link DecoderLayer.Midpoint} gives the observer and the output the bits of the pass from
 * the input (integer-exact claim: the same operations on the same values, so equality is bitwise), shows nothing from
 * before the midpoint, and leaves the midpoint's values as they were.
 */
class DecoderLayerMidpointTest {
    static final int SEQ = 7;
    static final int N_SEQ = 2;

    /** A pass's linear inputs in order (host copies), its keys count and its midpoints. */
    static final class Recorder implements LayerObserver {
        final List<String> modules = new ArrayList<>();
        final List<float[]> inputs = new ArrayList<>();
        final Map<DecoderLayer.Midpoint, float[]> midpoints = new EnumMap<>(DecoderLayer.Midpoint.class);
        int keys;

        @Override
        public void linearInput(String module, float[] x, int rows, int cols) {
            modules.add(module);
            inputs.add(x.clone());
        }

        @Override
        public void keysValues(float[] k, float[] v, int rows, int kvDim) {
            keys++;
        }

        @Override
        public void midpoint(DecoderLayer.Midpoint at, Backend backend, Buf values, int rows, int cols) {
            backend.inspect(values, a -> midpoints.put(at, a.clone()));
        }
    }

    /** The test config's layer on random weights from {@code seed}, vector kernels. */
    static DecoderLayer layer(long seed) {
        return new DecoderLayer(DecoderLayerTest.CFG, 0, DecoderLayerTest.randomWeights(seed), VectorKernels.INSTANCE);
    }

    @Test
    void passesFromEitherMidpointHaveTheWholePassBits() {
        for (Kernels k : List.of(ScalarKernels.INSTANCE, VectorKernels.INSTANCE)) {
            DecoderLayer layer = new DecoderLayer(DecoderLayerTest.CFG, 0, DecoderLayerTest.randomWeights(11), k);
            Backend b = layer.backend();
            DecoderLayer.Resident rw = layer.resident();
            float[] x = DecoderLayerTest.input(12, N_SEQ * SEQ);
            Recorder whole = new Recorder();
            float[] want;
            try (Buf in = b.wrap(x.clone())) {
                want = b.take(layer.forward(rw, in, N_SEQ, SEQ, 0, null, whole));
            }
            assertEquals(DecoderLayerTest.CFG.arch().linears(), whole.modules);
            assertEquals(1, whole.keys);
            assertEquals(2, whole.midpoints.size());

            for (DecoderLayer.Midpoint at : DecoderLayer.Midpoint.values()) {
                float[] mid = whole.midpoints.get(at);
                int skipped = at == DecoderLayer.Midpoint.ATTENTION ? 3 : 4;
                Recorder from = new Recorder();
                float[] got;
                try (Buf in = at == DecoderLayer.Midpoint.RESIDUAL ? null : b.wrap(x.clone());
                        Buf m = b.wrap(mid.clone())) {
                    got = b.take(layer.forwardFrom(rw, in, N_SEQ, SEQ, new DecoderLayer.Start(at, m), from));
                    float[] after = new float[(int) m.length()];
                    b.read(m, 0, after, 0, after.length);
                    assertArrayEquals(mid, after, k.name() + " " + at + ": the midpoint was written");
                }
                assertArrayEquals(want, got, k.name() + " " + at + ": output");
                assertEquals(whole.modules.subList(skipped, 7), from.modules, k.name() + " " + at);
                for (int i = 0; i < from.inputs.size(); i++) {
                    assertArrayEquals(whole.inputs.get(skipped + i), from.inputs.get(i), from.modules.get(i));
                }
                assertEquals(0, from.keys, "no keys before the midpoint");
                assertTrue(
                        from.midpoints.keySet().stream().allMatch(p -> p.compareTo(at) > 0), from.midpoints::toString);
            }
            layer.close();
        }
    }

    @Test
    void aPassFromAMidpointStopsWhenTheObserverHasEnough() {
        DecoderLayer layer = layer(13);
        Backend b = layer.backend();
        int rows = N_SEQ * SEQ;
        List<String> seen = new ArrayList<>();
        LayerObserver gateOnly = new LayerObserver() {
            @Override
            public void linearInput(String module, float[] x, int r, int c) {
                seen.add(module);
            }

            @Override
            public boolean enough() {
                return seen.contains("mlp.up_proj");
            }
        };
        try (Buf m = b.wrap(DecoderLayerTest.input(14, rows))) {
            assertNull(layer.forwardFrom(
                    layer.resident(),
                    null,
                    N_SEQ,
                    SEQ,
                    new DecoderLayer.Start(DecoderLayer.Midpoint.RESIDUAL, m),
                    gateOnly));
        }
        assertEquals(List.of("mlp.gate_proj", "mlp.up_proj"), seen);
        layer.close();
    }

    @Test
    void aMidpointOfTheWrongSizeIsRefused() {
        DecoderLayer layer = layer(15);
        Backend b = layer.backend();
        try (Buf m = b.wrap(new float[N_SEQ * SEQ * DecoderLayerTest.CFG.hiddenSize() - 1])) {
            IllegalArgumentException e = assertThrows(
                    IllegalArgumentException.class,
                    () -> layer.forwardFrom(
                            layer.resident(),
                            null,
                            N_SEQ,
                            SEQ,
                            new DecoderLayer.Start(DecoderLayer.Midpoint.RESIDUAL, m),
                            LayerObserver.NONE));
            assertTrue(e.getMessage().contains("RESIDUAL"), e.getMessage());
        }
        layer.close();
    }

    @Test
    void whichWeightsAMidpointDependsOn() {
        DecoderLayer layer = layer(16);
        Backend b = layer.backend();
        DecoderLayer.Resident rw = layer.resident();
        DecoderLayer.Weights other = DecoderLayerTest.randomWeights(17);
        try (Backend.Weight newO = b.weight(other.o());
                Backend.Weight newQ = b.weight(other.q());
                Backend.Weight newDown = b.weight(other.down())) {
            DecoderLayer.Resident withO = rw.with("self_attn.o_proj", newO);
            DecoderLayer.Resident withQ = rw.with("self_attn.q_proj", newQ);
            DecoderLayer.Resident withDown = rw.with("mlp.down_proj", newDown);
            for (DecoderLayer.Midpoint m : DecoderLayer.Midpoint.values()) {
                assertTrue(m.sameWeights(rw, withDown), m + ": down_proj comes after every midpoint");
                assertFalse(m.sameWeights(rw, withQ), m + ": q_proj comes before every midpoint");
            }
            assertTrue(DecoderLayer.Midpoint.ATTENTION.sameWeights(rw, withO));
            assertFalse(DecoderLayer.Midpoint.RESIDUAL.sameWeights(rw, withO));
        }
        assertNull(DecoderLayer.Midpoint.before("self_attn.q_proj"));
        assertNull(DecoderLayer.Midpoint.before("self_attn.v_proj"));
        assertEquals(DecoderLayer.Midpoint.ATTENTION, DecoderLayer.Midpoint.before("self_attn.o_proj"));
        assertEquals(DecoderLayer.Midpoint.RESIDUAL, DecoderLayer.Midpoint.before("mlp.gate_proj"));
        assertEquals(DecoderLayer.Midpoint.RESIDUAL, DecoderLayer.Midpoint.before("mlp.down_proj"));
        layer.close();
    }
}
