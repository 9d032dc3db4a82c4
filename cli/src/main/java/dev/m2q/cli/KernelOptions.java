package dev.m2q.cli;

import dev.m2q.core.kernels.Kernels;
import picocli.CommandLine.Option;

/** {@code --kernels vector|scalar}: which Java implementation runs the matrix products. */
final class KernelOptions {
    enum Choice {
        vector,
        scalar
    }

    @Option(
            names = "--kernels",
            paramLabel = "IMPL",
            defaultValue = "vector",
            description = "Java kernels: vector (Vector API, default) or scalar (the plain-loop twin).")
    Choice kernels;

    Kernels get() {
        return Kernels.byName(kernels.name());
    }
}
