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
            defaultValue = "${sys:m2q.kernels:-vector}",
            description = "Java kernels: vector (Vector API) or scalar (the plain-loop twin). Default ${DEFAULT-VALUE}"
                    + " (set -Dm2q.kernels to change it).")
    Choice kernels;

    Kernels get() {
        return Kernels.byName(kernels.name());
    }
}
