package dev.m2q.core.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.m2q.core.kernels.CountingKernels.OpCount;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The boundary tests' view of a {@link CountingKernels}' tallies: which of them are crossings (the only {@link Backend}
 * methods that move data between the host and the backend), and the check that nothing else moves bytes.
 */
public final class Crossings {
    /** The crossings' tallies, as {@link CountingBackend} names them. */
    public static final List<String> OPS = List.of(
            "backend.wrap",
            "backend.write",
            "backend.read",
            "backend.take",
            "backend.inspect",
            "backend.update",
            "backend.weight");

    private Crossings() {}

    /** The crossings' tallies (calls, bytes in, bytes out) by operation, those with no call left out. */
    public static Map<String, OpCount> of(CountingKernels ck) {
        Map<String, OpCount> m = new LinkedHashMap<>();
        for (String op : OPS) {
            OpCount c = ck.count(op);
            if (c.calls() > 0) {
                m.put(op, c);
            }
        }
        return m;
    }

    /** Every tally that moves bytes must be a crossing: the on-backend operations count calls only. */
    public static void assertOnlyCrossingsMoveBytes(CountingKernels ck) {
        for (OpCount c : ck.counts()) {
            if (!OPS.contains(c.op())) {
                assertEquals(0, c.bytesIn() + c.bytesOut(), c.op() + " moved bytes:\n" + ck.table());
            }
        }
    }
}
