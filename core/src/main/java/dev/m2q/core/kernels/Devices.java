package dev.m2q.core.kernels;

import dev.m2q.core.InputException;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.ServiceLoader;

/**
 * {@code --device cuda|cpu|auto}: which backend runs the kernels. cpu is the Java implementation; cuda needs a
 * {@link KernelsProvider} for "cuda" on the class path that can run here and passes {@link KernelSelfCheck}; auto
 * takes cuda when it can and the CPU otherwise.
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
     * @param cpu the Java kernels to use on the CPU, the reference of the self-check, and the ones a device
     *     backend hands small work to
     * @throws InputException for an unknown device, or "cuda" when no CUDA backend can run here or its self-check
     *     fails (the message says why)
     */
    public static Selection select(String device, Kernels cpu) {
        return select(device, cpu, provider("cuda"), KernelSelfCheck.registered());
    }

    /**
     * {@link #select(String, Kernels)} with the CUDA provider and the self-check's probes given (tests). Before
     * a CUDA backend is trusted, {@link KernelSelfCheck} runs every probe on it against {@code cpu}: on a
     * disagreement auto takes the CPU, its line saying which kernel and what differed, and cuda is refused with
     * the same reason.
     */
    public static Selection select(
            String device, Kernels cpu, Optional<KernelsProvider> cuda, List<KernelSelfCheck.Probe> probes) {
        String d = device.toLowerCase(Locale.ROOT);
        String onCpu = "device: cpu (" + cpu.name() + " kernels";
        return switch (d) {
            case "cpu" -> new Selection(cpu, "cpu", onCpu + ")");
            case "auto" -> {
                if (cuda.isEmpty()) {
                    yield new Selection(cpu, "cpu", onCpu + "; CUDA not used: no CUDA backend on the class path)");
                }
                Optional<String> why = cuda.get().unavailableReason();
                if (why.isPresent()) {
                    yield new Selection(cpu, "cpu", onCpu + "; CUDA not used: " + why.get() + ")");
                }
                KernelSelfCheck.Outcome check = selfCheck(cuda.get(), cpu, probes);
                if (!check.passed()) {
                    yield new Selection(
                            cpu,
                            "cpu",
                            onCpu + "; CUDA not used: self-check failed: "
                                    + check.failure().get() + ")");
                }
                yield open(cuda.get(), cpu, check);
            }
            case "cuda" -> {
                KernelsProvider p = cuda.orElseThrow(() -> new InputException("--device cuda: this build has no CUDA"
                        + " backend (m2q-kernels is not on the class path); use --device cpu"));
                Optional<String> why = p.unavailableReason();
                if (why.isPresent()) {
                    throw new InputException("--device cuda: " + why.get() + "; use --device cpu or auto");
                }
                KernelSelfCheck.Outcome check = selfCheck(p, cpu, probes);
                if (!check.passed()) {
                    throw new InputException("--device cuda: self-check failed: "
                            + check.failure().get() + "; use --device cpu (or auto, which falls back to it)");
                }
                yield open(p, cpu, check);
            }
            default -> throw new InputException("--device " + device + ": choose cuda, cpu or auto");
        };
    }

    private static KernelSelfCheck.Outcome selfCheck(
            KernelsProvider p, Kernels cpu, List<KernelSelfCheck.Probe> probes) {
        return KernelSelfCheck.check(p.openForSelfCheck(cpu), cpu, probes);
    }

    private static Selection open(KernelsProvider p, Kernels cpu, KernelSelfCheck.Outcome check) {
        String checked = String.format(
                Locale.ROOT,
                "self-check: %d kernels agree with the %s kernels, %.2f s",
                check.probes(),
                cpu.name(),
                check.time().toNanos() / 1e9);
        return new Selection(
                p.open(cpu), p.device(), "device: " + p.device() + " (" + p.describe() + "; " + checked + ")");
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
