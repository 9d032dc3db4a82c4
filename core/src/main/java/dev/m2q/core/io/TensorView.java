package dev.m2q.core.io;

import static java.nio.ByteOrder.LITTLE_ENDIAN;

import dev.m2q.core.tensor.Bf16;
import dev.m2q.core.tensor.DType;
import dev.m2q.core.tensor.Fp8;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Objects;

/**
 * A zero-copy view of one tensor: {@code data} holds {@code numel() × dtype.bytes()} bytes, row-major (last index
 * fastest), little-endian, with no alignment guarantee (safetensors offsets need not be aligned, so every access
 * uses unaligned layouts). For a tensor read from a file, {@code data} is a slice of the mapped file and is valid
 * only until that file is closed; {@code source} is the file, or null for a view over memory.
 *
 * <p>Element indices are flat: element {@code [i0, …, ik]} is at {@code ((i0·d1 + i1)·d2 + …)·dk + ik}.
 *
 * @param shape dimensions, outermost first; {@code []} is a scalar (one element)
 */
public record TensorView(String name, DType dtype, long[] shape, MemorySegment data, Path source) {
    /** The largest Java array this class creates, a little under the VM limit. */
    public static final int MAX_ARRAY_LENGTH = Integer.MAX_VALUE - 8;

    static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(LITTLE_ENDIAN);
    static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(LITTLE_ENDIAN);
    static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(LITTLE_ENDIAN);
    static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(LITTLE_ENDIAN);
    static final ValueLayout.OfDouble F64 = ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(LITTLE_ENDIAN);

    /** Checks that {@code data} has exactly the byte size that dtype and shape imply. */
    public TensorView {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(dtype, "dtype");
        Objects.requireNonNull(data, "data");
        shape = shape.clone();
        long bytes = Math.multiplyExact(numel(shape), dtype.bytes());
        if (data.byteSize() != bytes) {
            throw new IllegalArgumentException("tensor \"" + name + "\": " + dtype + " " + Arrays.toString(shape)
                    + " needs " + bytes + " bytes, data has " + data.byteSize());
        }
    }

    /** A view over memory that belongs to no file. */
    public TensorView(String name, DType dtype, long[] shape, MemorySegment data) {
        this(name, dtype, shape, data, null);
    }

    /**
     * The element count of a shape: the product of its dimensions, 1 for {@code []}, 0 when any dimension is 0.
     *
     * @throws IllegalArgumentException for a negative dimension
     * @throws ArithmeticException when the product overflows a long
     */
    public static long numel(long[] shape) {
        long n = 1;
        for (long d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException("negative dimension in " + Arrays.toString(shape));
            }
            if (d == 0) {
                return 0;
            }
        }
        for (long d : shape) {
            n = Math.multiplyExact(n, d);
        }
        return n;
    }

    /** A copy of the dimensions, outermost first. */
    @Override
    public long[] shape() {
        return shape.clone();
    }

    public int rank() {
        return shape.length;
    }

    /** Dimension {@code axis}, outermost first. */
    public long dim(int axis) {
        return shape[axis];
    }

    public long numel() {
        return data.byteSize() / dtype.bytes();
    }

    public long byteSize() {
        return data.byteSize();
    }

    /**
     * Element {@code i} of a floating-point tensor (BF16, F16, F32, F64, F8_E4M3, F8_E5M2) as a float: exact for
     * every type but F64, which is rounded to nearest.
     */
    public float getFloat(long i) {
        long off = Objects.checkIndex(i, numel()) * dtype.bytes();
        return switch (dtype) {
            case BF16 -> Bf16.toFloat(data.get(I16, off));
            case F16 -> Float.float16ToFloat(data.get(I16, off));
            case F32 -> data.get(F32, off);
            case F64 -> (float) data.get(F64, off);
            case F8_E4M3 -> Fp8.e4m3ToFloat(data.get(ValueLayout.JAVA_BYTE, off));
            case F8_E5M2 -> Fp8.e5m2ToFloat(data.get(ValueLayout.JAVA_BYTE, off));
            default -> throw wrongType("a floating-point dtype");
        };
    }

    /** Element {@code i} of an integer tensor of at most 32 bits (BOOL and U8 zero-extended, I8 and I16 signed). */
    public int getInt(long i) {
        long off = Objects.checkIndex(i, numel()) * dtype.bytes();
        return switch (dtype) {
            case BOOL, U8 -> data.get(ValueLayout.JAVA_BYTE, off) & 0xFF;
            case I8 -> data.get(ValueLayout.JAVA_BYTE, off);
            case I16 -> data.get(I16, off);
            case I32 -> data.get(I32, off);
            default -> throw wrongType("an integer dtype of at most 32 bits (BOOL, U8, I8, I16, I32)");
        };
    }

    /** Element {@code i} of any integer tensor (BOOL, U8, I8, I16, I32, I64), widened to long. */
    public long getLong(long i) {
        if (dtype == DType.I64) {
            return data.get(I64, Objects.checkIndex(i, numel()) * 8);
        }
        if (!isInteger(dtype)) {
            throw wrongType("an integer dtype (BOOL, U8, I8, I16, I32, I64)");
        }
        return getInt(i);
    }

    /**
     * Converts {@code count} elements starting at flat index {@code from} into {@code dst[dstOff …]}: the way to
     * stream rows of a tensor too large for one array. Same dtypes and exactness as {@link #getFloat}.
     */
    public void copyFloatsTo(float[] dst, int dstOff, long from, int count) {
        Objects.checkFromIndexSize(dstOff, count, dst.length);
        Objects.checkFromIndexSize(from, count, numel());
        long off = from * dtype.bytes();
        switch (dtype) {
            case F32 -> MemorySegment.copy(data, F32, off, dst, dstOff, count);
            case BF16 -> {
                for (int k = 0; k < count; k++) {
                    dst[dstOff + k] = Bf16.toFloat(data.get(I16, off + 2L * k));
                }
            }
            case F16 -> {
                for (int k = 0; k < count; k++) {
                    dst[dstOff + k] = Float.float16ToFloat(data.get(I16, off + 2L * k));
                }
            }
            case F64 -> {
                for (int k = 0; k < count; k++) {
                    dst[dstOff + k] = (float) data.get(F64, off + 8L * k);
                }
            }
            case F8_E4M3 -> {
                for (int k = 0; k < count; k++) {
                    dst[dstOff + k] = Fp8.e4m3ToFloat(data.get(ValueLayout.JAVA_BYTE, off + k));
                }
            }
            case F8_E5M2 -> {
                for (int k = 0; k < count; k++) {
                    dst[dstOff + k] = Fp8.e5m2ToFloat(data.get(ValueLayout.JAVA_BYTE, off + k));
                }
            }
            default -> throw wrongType("a floating-point dtype");
        }
    }

    /** All elements of a floating-point tensor as floats, flat and row-major; see {@link #getFloat}. */
    public float[] toFloatArray() {
        if (!dtype.isFloatingPoint()) {
            throw wrongType("a floating-point dtype");
        }
        int n = arrayLength();
        float[] out = new float[n];
        copyFloatsTo(out, 0, 0, n);
        return out;
    }

    /** All elements of an integer tensor of at most 32 bits, flat and row-major; see {@link #getInt}. */
    public int[] toIntArray() {
        if (dtype == DType.I32) {
            int[] out = new int[arrayLength()];
            MemorySegment.copy(data, I32, 0, out, 0, out.length);
            return out;
        }
        if (!isInteger(dtype) || dtype == DType.I64) {
            throw wrongType("an integer dtype of at most 32 bits (BOOL, U8, I8, I16, I32)");
        }
        int[] out = new int[arrayLength()];
        for (int i = 0; i < out.length; i++) {
            out[i] = getInt(i);
        }
        return out;
    }

    /** All elements of an integer tensor widened to long, flat and row-major; see {@link #getLong}. */
    public long[] toLongArray() {
        if (!isInteger(dtype)) {
            throw wrongType("an integer dtype (BOOL, U8, I8, I16, I32, I64)");
        }
        long[] out = new long[arrayLength()];
        if (dtype == DType.I64) {
            MemorySegment.copy(data, I64, 0, out, 0, out.length);
            return out;
        }
        for (int i = 0; i < out.length; i++) {
            out[i] = getInt(i);
        }
        return out;
    }

    /** This view, after checking that its shape is exactly {@code expected}; otherwise an error naming both. */
    public TensorView requireShape(long... expected) {
        if (!Arrays.equals(shape, expected)) {
            throw new SafetensorsFormatException(
                    source,
                    name,
                    "shape " + Arrays.toString(shape) + ", expected " + Arrays.toString(expected)
                            + " (does the checkpoint match config.json?)");
        }
        return this;
    }

    /** This view, after checking that its dtype is one of {@code allowed}; otherwise an error naming both. */
    public TensorView requireDtype(DType... allowed) {
        for (DType d : allowed) {
            if (d == dtype) {
                return this;
            }
        }
        throw new SafetensorsFormatException(
                source,
                name,
                "dtype " + dtype + ", expected " + (allowed.length == 1 ? "" : "one of ")
                        + String.join(
                                ", ", Arrays.stream(allowed).map(DType::name).toList()));
    }

    @Override
    public String toString() {
        return "TensorView[" + name + ", " + dtype + " " + Arrays.toString(shape) + ", " + data.byteSize() + " bytes"
                + (source == null ? "" : ", " + source) + "]";
    }

    private int arrayLength() {
        long n = numel();
        if (n > MAX_ARRAY_LENGTH) {
            throw new SafetensorsFormatException(
                    source,
                    name,
                    n + " elements do not fit one Java array (at most " + MAX_ARRAY_LENGTH
                            + "); read it in parts with copyFloatsTo or the getters");
        }
        return (int) n;
    }

    private SafetensorsFormatException wrongType(String expected) {
        return new SafetensorsFormatException(source, name, "dtype " + dtype + ", expected " + expected);
    }

    private static boolean isInteger(DType d) {
        return switch (d) {
            case BOOL, U8, I8, I16, I32, I64 -> true;
            default -> false;
        };
    }
}
