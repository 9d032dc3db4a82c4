package dev.m2q.cli;

import dev.m2q.core.kernels.Devices;
import dev.m2q.core.kernels.Kernels;
import picocli.CommandLine.Option;

/** {@code --device cuda|cpu|auto}: where the kernels run. */
final class DeviceOptions {
    enum Choice {
        auto,
        cuda,
        cpu
    }

    @Option(
            names = "--device",
            paramLabel = "DEVICE",
            defaultValue = "auto",
            description = "Where the kernels run: cuda (fails when it cannot), cpu (the Java kernels), or auto, the"
                    + " default: cuda when a GPU, its driver and this build's CUDA kernels are usable and pass a"
                    + " self-check against the Java kernels (under 2 s), else cpu. The first log line says which and"
                    + " why; cuda exits 2 naming the kernel that failed the self-check.")
    Choice device;

    /**
     * Devices.select with {@code cpu}, the Java kernels that run on the CPU and that a device hands small work to.
     *
     * @throws dev.m2q.core.InputException for --device cuda where CUDA cannot run or fails its self-check, with
     *     the reason
     */
    Devices.Selection select(Kernels cpu) {
        return Devices.select(device.name(), cpu);
    }
}
