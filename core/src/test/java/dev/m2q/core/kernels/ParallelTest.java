package dev.m2q.core.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicIntegerArray;
import org.junit.jupiter.api.Test;

/**
 * {@link Parallel}'s contract on every hand-off path (the calling thread alone, the spinning pool, the fork-join
 * pool when the spinning one is taken): each index runs exactly once, a failure in any task reaches the caller as
 * the same exception, and ranges started inside a task or from many threads at once all complete.
 */
class ParallelTest {
    /** Work per item for each path: below the spinning pool's threshold, above it, above the fork-join one. */
    private static final long[] WORK = {1, Parallel.SPIN_MIN_WORK, 1 << 20};

    private static int[] visits(int n, long work) {
        AtomicIntegerArray seen = new AtomicIntegerArray(n);
        Parallel.forRange(n, work, (from, to) -> {
            for (int i = from; i < to; i++) {
                seen.incrementAndGet(i);
            }
        });
        int[] out = new int[n];
        for (int i = 0; i < n; i++) {
            out[i] = seen.get(i);
        }
        return out;
    }

    @Test
    void everyIndexRunsExactlyOnceOnEveryPath() {
        for (long work : WORK) {
            for (int n : new int[] {0, 1, 2, 3, 7, 8, 9, 64, 1000}) {
                int[] ones = new int[n];
                Arrays.fill(ones, 1);
                for (int rep = 0; rep < 50; rep++) {
                    assertArrayEquals(ones, visits(n, work), "n " + n + ", work " + work + ", repetition " + rep);
                }
            }
        }
    }

    @Test
    void chunksRunOnThePoolsThreadsWhenThereIsMoreThanOneProcessor() {
        Set<String> threads = ConcurrentHashMap.newKeySet();
        // Ranges large enough to be split, each chunk long enough that a spinning worker claims one of them.
        for (int rep = 0; rep < 200 && threads.size() < 2; rep++) {
            Parallel.forRange(64, 1 << 20, (from, to) -> {
                threads.add(Thread.currentThread().getName());
                long until = System.nanoTime() + 20_000;
                while (System.nanoTime() < until) {
                    Thread.onSpinWait();
                }
            });
        }
        assertEquals(Math.min(2, Parallel.threads()), threads.size(), threads.toString());
    }

    @Test
    void aFailureInAnyChunkReachesTheCallerAsItIsAndThePoolStaysUsable() {
        for (long work : WORK) {
            for (int failing : new int[] {0, 5, 63}) {
                IllegalStateException boom = new IllegalStateException("chunk " + failing);
                RuntimeException thrown = assertThrows(
                        RuntimeException.class,
                        () -> Parallel.forRange(64, work, (f, t) -> {
                            if (failing >= f && failing < t) {
                                throw boom;
                            }
                        }));
                assertSame(boom, thrown, "work " + work);
                int[] ones = new int[64];
                Arrays.fill(ones, 1);
                assertArrayEquals(ones, visits(64, work), "the next range after a failure, work " + work);
            }
        }
        OutOfMemoryError oom = new OutOfMemoryError("test");
        assertSame(
                oom,
                assertThrows(
                        OutOfMemoryError.class,
                        () -> Parallel.forRange(8, 1 << 20, (f, t) -> {
                            throw oom;
                        })));
    }

    @Test
    void rangesInsideATaskComplete() {
        int outer = 16;
        int inner = 100;
        AtomicIntegerArray seen = new AtomicIntegerArray(outer * inner);
        Parallel.forRange(outer, 1 << 20, (from, to) -> {
            for (int i = from; i < to; i++) {
                int base = i * inner;
                Parallel.forRange(inner, 1 << 16, (f, t) -> {
                    for (int j = f; j < t; j++) {
                        seen.incrementAndGet(base + j);
                    }
                });
            }
        });
        for (int i = 0; i < outer * inner; i++) {
            assertEquals(1, seen.get(i), "index " + i);
        }
    }

    @Test
    void rangesFromManyThreadsAtOnceComplete() throws Exception {
        ExecutorService callers = Executors.newFixedThreadPool(4);
        try {
            Future<?>[] runs = new Future<?>[8];
            for (int c = 0; c < runs.length; c++) {
                long work = WORK[c % WORK.length];
                runs[c] = callers.submit(() -> {
                    int[] ones = new int[257];
                    Arrays.fill(ones, 1);
                    for (int rep = 0; rep < 300; rep++) {
                        assertArrayEquals(ones, visits(257, work));
                    }
                });
            }
            for (Future<?> f : runs) {
                f.get();
            }
        } finally {
            callers.shutdownNow();
        }
        assertTrue(Parallel.threads() >= 1);
    }
}
