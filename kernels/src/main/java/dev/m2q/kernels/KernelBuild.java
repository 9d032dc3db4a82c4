package dev.m2q.kernels;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.Properties;

/**
 * What this jar's CUDA build holds: {@code dev/m2q/kernels/cuda/kernels.properties}, written by
 * kernels/src/main/cuda/build.sh beside one fatbin per .cu file, and the rules deciding whether a driver and a GPU
 * can run them.
 *
 * @param skipped built with -Dm2q.nvcc.skip=true: no fatbins
 * @param cudaVersion the toolkit that compiled the fatbins, "13.0"
 * @param cudaVersionInt the same as the driver API counts it, major·1000 + minor·10: 13000
 * @param targets what each fatbin carries: "sm_80" (SASS for exactly that major, that minor or later) and
 *     "compute_90" (PTX, JIT-compiled for compute capability 9.0 or later)
 * @param fatbins file names under {@link #DIR}, one per .cu
 */
record KernelBuild(
        boolean skipped, String cudaVersion, int cudaVersionInt, List<String> targets, List<String> fatbins) {
    /** Class-path folder of the fatbins and kernels.properties. */
    static final String DIR = "/dev/m2q/kernels/cuda/";

    static final String SKIPPED = "this build has no CUDA kernels (built with -Dm2q.nvcc.skip)";

    KernelBuild {
        targets = List.copyOf(targets);
        fatbins = List.copyOf(fatbins);
    }

    /**
     * Reads kernels.properties from the class path.
     *
     * @throws IllegalStateException with a one-line reason when it is missing or malformed
     */
    static KernelBuild load() {
        Properties p = new Properties();
        try (InputStream in = KernelBuild.class.getResourceAsStream(DIR + "kernels.properties")) {
            if (in == null) {
                throw new IllegalStateException("this build has no CUDA kernels (no " + DIR.substring(1)
                        + "kernels.properties on the class path; build m2q-kernels with Maven)");
            }
            p.load(in);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + DIR + "kernels.properties: " + e.getMessage(), e);
        }
        if (Boolean.parseBoolean(p.getProperty("skipped"))) {
            return new KernelBuild(true, "", 0, List.of(), List.of());
        }
        try {
            return new KernelBuild(
                    false,
                    required(p, "cuda.version"),
                    Integer.parseInt(required(p, "cuda.version.int")),
                    list(required(p, "targets")),
                    list(required(p, "fatbins")));
        } catch (NumberFormatException e) {
            throw new IllegalStateException(DIR + "kernels.properties: cuda.version.int is not a number");
        }
    }

    private static String required(Properties p, String key) {
        String v = p.getProperty(key);
        if (v == null || v.isBlank()) {
            throw new IllegalStateException(DIR + "kernels.properties has no " + key + "; rebuild m2q-kernels");
        }
        return v.trim();
    }

    private static List<String> list(String csv) {
        return Arrays.stream(csv.split(","))
                .map(String::trim)
                .filter(s -> !s.isEmpty())
                .toList();
    }

    /** The bytes of one fatbin of this build. */
    byte[] fatbin(String name) {
        try (InputStream in = KernelBuild.class.getResourceAsStream(DIR + name)) {
            if (in == null) {
                throw new IllegalStateException(DIR + name + " is listed in kernels.properties but missing from the"
                        + " class path; rebuild m2q-kernels");
            }
            return in.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + DIR + name + ": " + e.getMessage(), e);
        }
    }

    /**
     * Empty when a driver of {@code driverVersion} (cuDriverGetVersion: major·1000 + minor·10) can load code built
     * by toolkit {@code toolkitVersion}; otherwise the one line saying it cannot. A driver runs what toolkits up to
     * its own CUDA version built (PTX in particular, which it JIT-compiles); m2q asks no more and no less.
     */
    static Optional<String> driverTooOld(int driverVersion, int toolkitVersion) {
        if (driverVersion >= toolkitVersion) {
            return Optional.empty();
        }
        return Optional.of("the NVIDIA driver supports CUDA " + version(driverVersion) + ", older than the CUDA "
                + version(toolkitVersion) + " these kernels were built with; update the driver");
    }

    /**
     * Empty when one of {@link #targets()} runs on a GPU of compute capability {@code cc} (major·10 + minor):
     * SASS sm_XY runs on X.Y up to X.9, PTX compute_XY on X.Y and every later GPU. Otherwise a one-line reason
     * naming the GPU.
     */
    Optional<String> unsupportedGpu(String gpu, int cc) {
        for (String t : targets) {
            int arch = Integer.parseInt(t.substring(t.indexOf('_') + 1));
            boolean sass = t.startsWith("sm_");
            if (sass ? cc / 10 == arch / 10 && cc >= arch : cc >= arch) {
                return Optional.empty();
            }
        }
        return Optional.of(gpu + " is sm_" + cc + "; these kernels have code for " + String.join(", ", targets)
                + " (Ampere or newer)");
    }

    /** 12040 → "12.4", as cuDriverGetVersion and CUDA_VERSION count. */
    static String version(int v) {
        return String.format(Locale.ROOT, "%d.%d", v / 1000, v % 1000 / 10);
    }
}
