package dev.m2q.core.io;

import dev.m2q.core.tensor.DType;
import java.util.Arrays;
import java.util.Objects;

/**
 * A tensor to be written: name, dtype and shape (outermost first, row-major), which fix its byte size.
 *
 * @param shape dimensions, outermost first; {@code []} is a scalar
 */
public record TensorSpec(String name, DType dtype, long[] shape) {
    /** Rejects the reserved name {@code __metadata__}, negative dimensions and sizes that overflow a long. */
    public TensorSpec {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(dtype, "dtype");
        if (name.equals("__metadata__")) {
            throw new IllegalArgumentException("\"__metadata__\" is reserved in safetensors headers");
        }
        shape = shape.clone();
        Math.multiplyExact(TensorView.numel(shape), dtype.bytes());
    }

    /** The spec of an existing tensor. */
    public static TensorSpec of(TensorView view) {
        return new TensorSpec(view.name(), view.dtype(), view.shape());
    }

    /** A copy of the dimensions. */
    @Override
    public long[] shape() {
        return shape.clone();
    }

    public long numel() {
        return TensorView.numel(shape);
    }

    public long byteSize() {
        return numel() * dtype.bytes();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof TensorSpec t && name.equals(t.name) && dtype == t.dtype && Arrays.equals(shape, t.shape);
    }

    @Override
    public int hashCode() {
        return Objects.hash(name, dtype, Arrays.hashCode(shape));
    }

    @Override
    public String toString() {
        return name + " " + dtype + " " + Arrays.toString(shape);
    }
}
