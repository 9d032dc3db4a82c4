package dev.m2q.kernels;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.SymbolLookup;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Function;
import java.util.stream.Stream;

/**
 * Where cuBLAS and cuSOLVER are found, by file, without JNI: the sonames of each CUDA release, newest first (a
 * release newer than the driver is skipped, its libraries would refuse to initialize), looked up in a list of
 * folders, first folder first.
 *
 * <p>The folders: the override {@code -Dm2q.cuda.libs} or {@code M2Q_CUDA_LIBS} alone when set (a path list;
 * {@code none} turns the vendor libraries off, so that m2q's own kernels run); otherwise {@code LD_LIBRARY_PATH},
 * {@code CUDA_HOME}/{@code CUDA_PATH}, /usr/local/cuda*, the system library folders, then the nvidia/* folders of a
 * PyTorch install's site-packages (a virtualenv, conda, ~/.local, /usr/local/lib, /usr/lib, /opt/conda). The
 * libraries a library needs (cuBLASLt for cuBLAS; nvJitLink and cuSPARSE for cuSOLVER) are loaded first from
 * the same list, because a wheel's folders are not on the loader's path; the loader then matches them by soname.
 * Those and cuSOLVER are looked for in cuBLAS's folder first, so that one installation's libraries go together.
 */
final class VendorLibraries {
    static final String OVERRIDE_PROPERTY = "m2q.cuda.libs";
    static final String OVERRIDE_ENV = "M2Q_CUDA_LIBS";

    /**
     * The libraries of one CUDA major release, by soname.
     *
     * @param blasDeps loaded before {@code cublas}
     * @param solverDeps loaded before {@code cusolver}
     */
    record Release(int cudaMajor, List<String> blasDeps, String cublas, List<String> solverDeps, String cusolver) {}

    /** Newest first. CUDA 12.x ships cuSOLVER 11 (libcusolver.so.11), CUDA 13.x cuSOLVER 12. */
    static final List<Release> RELEASES = List.of(
            new Release(
                    13,
                    List.of("libcublasLt.so.13"),
                    "libcublas.so.13",
                    List.of("libnvJitLink.so.13", "libcusparse.so.12"),
                    "libcusolver.so.12"),
            new Release(
                    12,
                    List.of("libcublasLt.so.12"),
                    "libcublas.so.12",
                    List.of("libnvJitLink.so.12", "libcusparse.so.12"),
                    "libcusolver.so.11"));

    /** The folders to search and where the list came from ("M2Q_CUDA_LIBS", "default"); none when turned off. */
    record Search(List<Path> dirs, String source, boolean disabled) {
        Search {
            dirs = List.copyOf(dirs);
        }
    }

    /** What was found: the release, and soname → file for each library found (dependencies may be missing). */
    sealed interface Lookup {}

    /**
     * @param blas cuBLAS's file; {@code solver} cuSOLVER's, absent when only cuBLAS was found
     * @param deps the dependencies found, in load order
     */
    record Found(Release release, List<Path> blasDeps, Path blas, List<Path> solverDeps, Optional<Path> solver)
            implements Lookup {}

    /** Nothing usable; {@code reason} is the device line's words. */
    record Missing(String reason) implements Lookup {}

    private VendorLibraries() {}

    /** The search list of this process (its environment and system properties). */
    static Search search() {
        return search(System.getenv(), System.getProperty(OVERRIDE_PROPERTY), Path.of(System.getProperty("user.home")));
    }

    /** The search list from an environment, the system property's value (or null) and the home folder. */
    static Search search(Map<String, String> env, String property, Path home) {
        String override = property != null ? property : env.get(OVERRIDE_ENV);
        String source = property != null ? "-D" + OVERRIDE_PROPERTY : OVERRIDE_ENV;
        if (override != null && !override.isBlank()) {
            if (override.strip().equalsIgnoreCase("none")) {
                return new Search(List.of(), source + "=none", true);
            }
            return new Search(pathList(override), source, false);
        }
        LinkedHashSet<Path> dirs = new LinkedHashSet<>(pathList(env.getOrDefault("LD_LIBRARY_PATH", "")));
        for (String var : List.of("CUDA_HOME", "CUDA_PATH")) {
            String v = env.get(var);
            if (v != null && !v.isBlank()) {
                dirs.add(Path.of(v, "lib64"));
                dirs.add(Path.of(v, "targets", "x86_64-linux", "lib"));
            }
        }
        dirs.add(Path.of("/usr/local/cuda/lib64"));
        dirs.add(Path.of("/usr/local/cuda/targets/x86_64-linux/lib"));
        for (Path cuda : newestFirst(Path.of("/usr/local"), "cuda-")) {
            dirs.add(cuda.resolve("lib64"));
            dirs.add(cuda.resolve("targets/x86_64-linux/lib"));
        }
        dirs.addAll(List.of(
                Path.of("/usr/lib/x86_64-linux-gnu"),
                Path.of("/usr/lib/aarch64-linux-gnu"),
                Path.of("/usr/lib64"),
                Path.of("/usr/lib")));
        List<Path> prefixes = new ArrayList<>();
        for (String var : List.of("VIRTUAL_ENV", "CONDA_PREFIX")) {
            String v = env.get(var);
            if (v != null && !v.isBlank()) {
                prefixes.add(Path.of(v));
            }
        }
        prefixes.addAll(List.of(home.resolve(".local"), Path.of("/usr/local"), Path.of("/usr"), Path.of("/opt/conda")));
        for (Path prefix : prefixes) {
            for (Path python : newestFirst(prefix.resolve("lib"), "python3")) {
                for (String packages : List.of("site-packages", "dist-packages")) {
                    dirs.addAll(wheelFolders(python.resolve(packages)));
                }
            }
            dirs.addAll(wheelFolders(prefix.resolve("lib/python3/dist-packages")));
        }
        return new Search(new ArrayList<>(dirs), "default", false);
    }

    /** The folders of NVIDIA's wheels under one site-packages: one per library (CUDA 12), one for all (CUDA 13). */
    static List<Path> wheelFolders(Path sitePackages) {
        Path nvidia = sitePackages.resolve("nvidia");
        return Stream.of("cu13/lib", "cublas/lib", "cusolver/lib", "cusparse/lib", "nvjitlink/lib")
                .map(nvidia::resolve)
                .toList();
    }

    /** The libraries of the newest release the driver runs whose cuBLAS is in one of the folders. */
    static Lookup find(Search search, int driverVersion) {
        if (search.disabled()) {
            return new Missing("turned off by " + search.source());
        }
        return find(search.dirs(), driverVersion, dir -> Files.isRegularFile(dir));
    }

    /** {@link #find(Search, int)} over {@code dirs}, with {@code exists} deciding whether a file is there. */
    static Lookup find(List<Path> dirs, int driverVersion, Function<Path, Boolean> exists) {
        int driverMajor = driverVersion / 1000;
        List<String> tried = new ArrayList<>();
        for (Release r : RELEASES) {
            if (r.cudaMajor() > driverMajor) {
                continue;
            }
            tried.add(r.cublas());
            Optional<Path> blas = first(dirs, r.cublas(), exists);
            if (blas.isEmpty()) {
                continue;
            }
            // the rest from cuBLAS's folder first: one installation's libraries match each other's versions
            List<Path> near = new ArrayList<>(List.of(blas.get().getParent()));
            near.addAll(dirs);
            return new Found(
                    r,
                    all(near, r.blasDeps(), exists),
                    blas.get(),
                    all(near, r.solverDeps(), exists),
                    first(near, r.cusolver(), exists));
        }
        if (tried.isEmpty()) {
            return new Missing("the driver (CUDA " + KernelBuild.version(driverVersion) + ") is older than CUDA "
                    + RELEASES.getLast().cudaMajor() + " that the vendor libraries need");
        }
        return new Missing("no " + String.join(" or ", tried) + " in " + dirs.size() + " folders searched; set "
                + OVERRIDE_ENV + " to the folder that holds them");
    }

    /** The libraries opened, in load order, for the lifetime of the process; what the device line says. */
    record Loaded(Optional<SymbolLookup> blas, Optional<SymbolLookup> solver, String describe) {}

    /**
     * dlopen of what {@link #find} found, dependencies first. A library that fails to load leaves that part to
     * m2q's kernels; the line says which and why. Never throws.
     */
    static Loaded load(Lookup lookup) {
        return switch (lookup) {
            case Missing m -> new Loaded(Optional.empty(), Optional.empty(), "m2q kernels (" + m.reason() + ")");
            case Found f -> {
                Arena forever = Arena.global();
                f.blasDeps().forEach(p -> tryOpen(p, forever));
                SymbolLookup blas;
                try {
                    blas = SymbolLookup.libraryLookup(f.blas(), forever);
                } catch (RuntimeException e) {
                    yield new Loaded(
                            Optional.empty(),
                            Optional.empty(),
                            "m2q kernels (" + f.blas() + " did not load: " + e.getMessage() + ")");
                }
                String line = "cuBLAS " + f.blas();
                if (f.solver().isEmpty()) {
                    yield new Loaded(
                            Optional.of(blas),
                            Optional.empty(),
                            line + ", Cholesky on m2q kernels (no "
                                    + f.release().cusolver() + ")");
                }
                f.solverDeps().forEach(p -> tryOpen(p, forever));
                try {
                    SymbolLookup solver = SymbolLookup.libraryLookup(f.solver().get(), forever);
                    yield new Loaded(
                            Optional.of(blas),
                            Optional.of(solver),
                            line + ", cuSOLVER " + f.solver().get());
                } catch (RuntimeException e) {
                    yield new Loaded(
                            Optional.of(blas),
                            Optional.empty(),
                            line + ", Cholesky on m2q kernels (" + f.solver().get() + " did not load: " + e.getMessage()
                                    + ")");
                }
            }
        };
    }

    private static void tryOpen(Path p, Arena arena) {
        try {
            SymbolLookup.libraryLookup(p, arena);
        } catch (RuntimeException e) {
            // the library that needs it reports the failure, naming itself
        }
    }

    private static Optional<Path> first(List<Path> dirs, String soname, Function<Path, Boolean> exists) {
        return dirs.stream().map(d -> d.resolve(soname)).filter(exists::apply).findFirst();
    }

    private static List<Path> all(List<Path> dirs, List<String> sonames, Function<Path, Boolean> exists) {
        List<Path> found = new ArrayList<>();
        for (String s : sonames) {
            first(dirs, s, exists).ifPresent(found::add);
        }
        return found;
    }

    private static List<Path> pathList(String list) {
        List<Path> dirs = new ArrayList<>();
        for (String part : list.split(java.io.File.pathSeparator)) {
            if (!part.isBlank()) {
                dirs.add(Path.of(part.strip()));
            }
        }
        return dirs;
    }

    /** The folders of {@code parent} named {@code prefix}…, highest version first ("cuda-13.0" before "cuda-12.8"). */
    static List<Path> newestFirst(Path parent, String prefix) {
        if (!Files.isDirectory(parent)) {
            return List.of();
        }
        try (Stream<Path> s = Files.list(parent)) {
            return s.filter(p -> p.getFileName().toString().startsWith(prefix) && Files.isDirectory(p))
                    .sorted(Comparator.comparing(
                                    (Path p) -> versionKey(p.getFileName().toString(), prefix))
                            .reversed())
                    .toList();
        } catch (IOException e) {
            return List.of();
        }
    }

    /** "12.10" after "12.9": each part left-padded with zeros to 8 characters. */
    private static String versionKey(String name, String prefix) {
        StringBuilder key = new StringBuilder();
        for (String part : name.substring(prefix.length()).split("\\.")) {
            key.append("0".repeat(Math.max(0, 8 - part.length()))).append(part).append('.');
        }
        return key.toString();
    }
}
