package dev.m2q.core.kernels;

import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import java.util.stream.IntStream;

/**
 * Splits an index range over this process's cores when the work is large enough to pay for it. Each index is
 * handled by exactly one task, so results do not depend on the thread count.
 *
 * <p>Two ways to hand work off. A range of at least {@link #SPIN_MIN_WORK} multiply-adds goes to a pool of
 * {@code threads() − 1} workers that wait for the next range spinning ({@link #SPIN_NANOS}), then yielding their
 * core ({@link #YIELD_NANOS}), then parked: a decode step runs some sixty products of 10⁴–10⁶ multiply-adds a few
 * microseconds apart, and the fork-join pool's hand-off (a parked thread woken per call) cost as much as such a
 * product, so below 2.6·10⁵ multiply-adds the fixture's decoding ran on one core. The caller runs chunks itself and
 * spins until the workers' chunks are done (in the fixture's speculative decoding about 1 µs per range, beside 10 µs
 * of its own chunks). A range that arrives while the pool is in use (from another thread, or from inside a task)
 * takes the fork-join pool above {@link #MIN_WORK}, as before, or runs on the calling thread.
 */
public final class Parallel {
    /** The body of a loop over [from, to). */
    @FunctionalInterface
    public interface Range {
        void run(int from, int to);
    }

    /**
     * About 10⁵ multiply-adds: below that the fork-join pool's hand-off costs as much as the work (measured on 2
     * cores: a decode step of the fixture, whose matrices are 256 wide, ran slower split at 2¹⁶ than on one thread).
     */
    private static final long MIN_WORK = 1 << 18;

    /** The spinning pool's threshold: its hand-off is a few hundred nanoseconds, about 10⁴ multiply-adds of work. */
    static final long SPIN_MIN_WORK = 1 << 14;

    /** How long an idle worker spins on its core before it starts to yield it to other threads. */
    static final long SPIN_NANOS = 100_000;

    /** How long an idle worker spins yielding before it parks (the next range then wakes it, at the old cost). */
    static final long YIELD_NANOS = 2_000_000;

    /**
     * {@code availableProcessors()}, read once: in a container the call reads the cgroup's limits and took 1.1 µs
     * here, as long as a 256-wide product of the fixture's decode step, which asked for it per product.
     */
    private static final int THREADS = Runtime.getRuntime().availableProcessors();

    private Parallel() {}

    /** The processors this process may use, as {@link Runtime#availableProcessors()} gave them at start. */
    public static int threads() {
        return THREADS;
    }

    /** Runs {@code body} over [0, n), in parallel chunks when n × workPerItem is large. */
    public static void forRange(int n, long workPerItem, Range body) {
        int threads = THREADS;
        long work = n * workPerItem;
        if (threads == 1 || n < 2) {
            body.run(0, n);
            return;
        }
        if (work >= SPIN_MIN_WORK && Spin.POOL.tryRun(n, Math.min(n, threads * 4), body)) {
            return;
        }
        if (work < MIN_WORK) {
            body.run(0, n);
            return;
        }
        int chunks = Math.min(n, threads * 4);
        IntStream.range(0, chunks).parallel().forEach(c -> body.run(from(n, c, chunks), from(n, c + 1, chunks)));
    }

    /** The first index of chunk c of n indices in {@code chunks} chunks. */
    private static int from(int n, int c, int chunks) {
        return (int) ((long) n * c / chunks);
    }

    /** One range handed to the spinning pool: its chunks are claimed one at a time by the caller and the workers. */
    private static final class Job {
        final int n;
        final int chunks;
        final Range body;
        final AtomicInteger next = new AtomicInteger();
        final AtomicInteger done = new AtomicInteger();
        volatile Throwable failure;

        Job(int n, int chunks, Range body) {
            this.n = n;
            this.chunks = chunks;
            this.body = body;
        }

        /** Claims and runs chunks until none is left. */
        void work() {
            for (int c; (c = next.getAndIncrement()) < chunks; ) {
                try {
                    if (failure == null) {
                        body.run(from(n, c, chunks), from(n, c + 1, chunks));
                    }
                } catch (Throwable t) {
                    if (failure == null) {
                        failure = t;
                    }
                } finally {
                    done.incrementAndGet();
                }
            }
        }
    }

    /** The spinning pool: daemon workers started on first use, one range at a time. */
    private static final class Spin {
        static final Spin POOL = new Spin(THREADS - 1);

        private final Thread[] workers;
        /** Whether worker i is parked (or about to be): the caller then unparks it. */
        private final AtomicBoolean[] parked;

        private final AtomicBoolean busy = new AtomicBoolean();
        /** The current range; published before {@link #epoch} moves on. */
        private volatile Job job;

        private volatile long epoch;

        private Spin(int count) {
            workers = new Thread[Math.max(0, count)];
            parked = new AtomicBoolean[workers.length];
            for (int i = 0; i < workers.length; i++) {
                parked[i] = new AtomicBoolean();
                int id = i;
                workers[i] = Thread.ofPlatform()
                        .name("m2q-parallel-" + (i + 1))
                        .daemon()
                        .unstarted(() -> loop(id));
                workers[i].start();
            }
        }

        /**
         * Runs {@code body} over [0, n) in {@code chunks} chunks on the pool and this thread; false (nothing run)
         * when the pool is in use or has no worker.
         */
        boolean tryRun(int n, int chunks, Range body) {
            if (workers.length == 0 || !busy.compareAndSet(false, true)) {
                return false;
            }
            try {
                Job j = new Job(n, chunks, body);
                job = j;
                epoch++;
                for (int i = 0; i < workers.length; i++) {
                    if (parked[i].get()) {
                        LockSupport.unpark(workers[i]);
                    }
                }
                j.work();
                while (j.done.get() < chunks) {
                    Thread.onSpinWait();
                }
                Throwable t = j.failure;
                if (t instanceof RuntimeException r) {
                    throw r;
                }
                if (t instanceof Error e) {
                    throw e;
                }
                if (t != null) {
                    throw new IllegalStateException(t);
                }
                return true;
            } finally {
                job = null;
                busy.set(false);
            }
        }

        private void loop(int id) {
            long seen = epoch;
            long idleSince = System.nanoTime();
            while (true) {
                long e = epoch;
                if (e != seen) {
                    seen = e;
                    Job j = job;
                    if (j != null) {
                        j.work();
                    }
                    idleSince = System.nanoTime();
                } else if (System.nanoTime() - idleSince < SPIN_NANOS) {
                    Thread.onSpinWait();
                } else if (System.nanoTime() - idleSince < YIELD_NANOS) {
                    Thread.yield();
                } else {
                    parked[id].set(true);
                    if (epoch == seen) {
                        LockSupport.park(this);
                    }
                    parked[id].set(false);
                    idleSince = System.nanoTime();
                }
            }
        }
    }
}
