package dev.m2q.core.kernels;

import dev.m2q.core.InputException;
import java.util.Locale;
import java.util.Optional;
import java.util.ServiceLoader;

/**
 * {@code --device cuda|cpu|auto}: which backend runs the kernels. cpu is the Java implementation; cuda needs a
 * {@link KernelsProvider} for "cuda" on the class path that can run here; auto takes cuda when it can and the
 * CPU otherwise.
 */
public final class Devices {
    /**
     * The chosen kernels and the one line to log about the choice.
     *
     * @param device "cpu" or the provider's device name
     */
    public record Selection(Kernels kernels, String device, String line) {}

    private Devices() {}

    /**
     * @param device "cpu", "cuda" or "auto" (any case)
     * @param cpu the Java kernels to use on the CPU, and the ones a device backend hands small work to
     * @throws InputException for an unknown device, or "cuda" when no CUDA backend can run here (the message
     *     says why)
     */
    public static Selection select(String device, Kernels cpu) {
        String d = device.toLowerCase(Locale.ROOT);
        return switch (d) {
            case "cpu" -> new Selection(cpu, "cpu", "device: cpu (" + cpu.name() + " kernels)");
            case "auto" -> {
                Optional<KernelsProvider> p = provider("cuda");
                if (p.isPresent() && p.get().unavailableReason().isEmpty()) {
                    yield open(p.get(), cpu);
                }
                String why = p.isEmpty()
                        ? "no CUDA backend on the class path"
                        : p.get().unavailableReason().get();
                yield new Selection(cpu, "cpu", "device: cpu (" + cpu.name() + " kernels; CUDA not used: " + why + ")");
            }
            case "cuda" -> {
                KernelsProvider p = provider(d)
                        .orElseThrow(() -> new InputException("--device cuda: this build has no CUDA backend"
                                + " (m2q-kernels is not on the class path); use --device cpu"));
                Optional<String> why = p.unavailableReason();
                if (why.isPresent()) {
                    throw new InputException("--device cuda: " + why.get() + "; use --device cpu or auto");
                }
                yield open(p, cpu);
            }
            default -> throw new InputException("--device " + device + ": choose cuda, cpu or auto");
        };
    }

    private static Selection open(KernelsProvider p, Kernels cpu) {
        return new Selection(p.open(cpu), p.device(), "device: " + p.device() + " (" + p.describe() + ")");
    }

    /** The provider for {@code device} on the class path, if any. */
    public static Optional<KernelsProvider> provider(String device) {
        for (KernelsProvider p : ServiceLoader.load(KernelsProvider.class)) {
            if (p.device().equals(device)) {
                return Optional.of(p);
            }
        }
        return Optional.empty();
    }
}
