package dev.m2q.core.tensor;

import java.util.Optional;

/** Element types of safetensors files, named as in the header's {@code "dtype"} field. */
public enum DType {
    BOOL(1),
    U8(1),
    I8(1),
    F8_E4M3(1),
    F8_E5M2(1),
    I16(2),
    F16(2),
    BF16(2),
    I32(4),
    F32(4),
    I64(8),
    F64(8);

    private final int bytes;

    DType(int bytes) {
        this.bytes = bytes;
    }

    /** Bytes per element. */
    public int bytes() {
        return bytes;
    }

    /** The safetensors header name (identical to the constant's name). */
    public String safetensorsName() {
        return name();
    }

    /** The dtype for a header name, or empty when the name is not one m2q reads. */
    public static Optional<DType> fromSafetensorsName(String name) {
        for (DType d : values()) {
            if (d.name().equals(name)) {
                return Optional.of(d);
            }
        }
        return Optional.empty();
    }

    public boolean isFloatingPoint() {
        return switch (this) {
            case F8_E4M3, F8_E5M2, F16, BF16, F32, F64 -> true;
            default -> false;
        };
    }
}
