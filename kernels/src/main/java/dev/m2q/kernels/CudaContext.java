package dev.m2q.kernels;

import static jcuda.driver.JCudaDriver.cuCtxSetCurrent;
import static jcuda.driver.JCudaDriver.cuCtxSynchronize;
import static jcuda.driver.JCudaDriver.cuDeviceGet;
import static jcuda.driver.JCudaDriver.cuDeviceGetAttribute;
import static jcuda.driver.JCudaDriver.cuDeviceGetCount;
import static jcuda.driver.JCudaDriver.cuDeviceGetName;
import static jcuda.driver.JCudaDriver.cuDevicePrimaryCtxRetain;
import static jcuda.driver.JCudaDriver.cuDeviceTotalMem;
import static jcuda.driver.JCudaDriver.cuDriverGetVersion;
import static jcuda.driver.JCudaDriver.cuEventCreate;
import static jcuda.driver.JCudaDriver.cuEventDestroy;
import static jcuda.driver.JCudaDriver.cuEventElapsedTime;
import static jcuda.driver.JCudaDriver.cuEventRecord;
import static jcuda.driver.JCudaDriver.cuEventSynchronize;
import static jcuda.driver.JCudaDriver.cuFuncSetAttribute;
import static jcuda.driver.JCudaDriver.cuInit;
import static jcuda.driver.JCudaDriver.cuLaunchKernel;
import static jcuda.driver.JCudaDriver.cuMemAlloc;
import static jcuda.driver.JCudaDriver.cuMemFree;
import static jcuda.driver.JCudaDriver.cuMemGetInfo;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoD;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoH;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoD;
import static jcuda.driver.JCudaDriver.cuMemsetD8;
import static jcuda.driver.JCudaDriver.cuModuleGetFunction;
import static jcuda.driver.JCudaDriver.cuModuleLoadData;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import jcuda.Pointer;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdevice_attribute;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUevent;
import jcuda.driver.CUfunction;
import jcuda.driver.CUfunction_attribute;
import jcuda.driver.CUmodule;
import jcuda.driver.CUresult;

/**
 * One context on device 0 (its primary context) with every fatbin of kernels.properties loaded (cuModuleLoadData),
 * through the JCuda driver API only. All methods are synchronized (calls are serialized, and the context is made
 * current on the calling thread first); every driver call's result is checked and a failure throws
 * {@link CudaException} naming the call, and the kernel for launches.
 *
 * <p>An error that the driver makes sticky (an illegal address, a failed launch) leaves the context unusable:
 * every later call throws, naming the first error. The process must be restarted.
 */
public final class CudaContext {
    /** Errors after which every call on the context fails until the process ends (CUDA driver API docs). */
    private static final Set<Integer> STICKY = Set.of(
            CUresult.CUDA_ERROR_ILLEGAL_ADDRESS,
            CUresult.CUDA_ERROR_LAUNCH_TIMEOUT,
            CUresult.CUDA_ERROR_HARDWARE_STACK_ERROR,
            CUresult.CUDA_ERROR_ILLEGAL_INSTRUCTION,
            CUresult.CUDA_ERROR_MISALIGNED_ADDRESS,
            CUresult.CUDA_ERROR_INVALID_ADDRESS_SPACE,
            CUresult.CUDA_ERROR_INVALID_PC,
            CUresult.CUDA_ERROR_LAUNCH_FAILED,
            CUresult.CUDA_ERROR_ASSERT);

    /** Host-side staging for uploads from heap memory segments. */
    private static final int STAGING = 16 << 20;

    /** Slice of a native memory segment handed to one cuMemcpyHtoD (a ByteBuffer holds < 2 GiB). */
    private static final long NATIVE_CHUNK = 1L << 30;

    private static Optional<String> unavailable;
    private static CudaContext instance;

    private final KernelBuild build;
    private final CUcontext context;
    private final String gpu;
    private final int computeCapability;
    private final long totalMemory;
    private final int driverVersion;
    private final Map<String, CUmodule> modules = new LinkedHashMap<>();
    private final Map<String, Kernel> kernels = new HashMap<>();
    private String broken;

    private CudaContext(KernelBuild build, int driverVersion) {
        this.build = build;
        this.driverVersion = driverVersion;
        CUdevice device = new CUdevice();
        checkInit(cuDeviceGet(device, 0), "cuDeviceGet(0)");
        byte[] name = new byte[256];
        checkInit(cuDeviceGetName(name, name.length, device), "cuDeviceGetName");
        this.gpu = cString(name);
        int[] major = new int[1];
        int[] minor = new int[1];
        checkInit(
                cuDeviceGetAttribute(major, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device),
                "cuDeviceGetAttribute(COMPUTE_CAPABILITY_MAJOR)");
        checkInit(
                cuDeviceGetAttribute(minor, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device),
                "cuDeviceGetAttribute(COMPUTE_CAPABILITY_MINOR)");
        this.computeCapability = major[0] * 10 + minor[0];
        long[] total = new long[1];
        checkInit(cuDeviceTotalMem(total, device), "cuDeviceTotalMem");
        this.totalMemory = total[0];
        Optional<String> unsupported = build.unsupportedGpu(gpu, computeCapability);
        if (unsupported.isPresent()) {
            throw new CudaException(unsupported.get());
        }
        this.context = new CUcontext();
        checkInit(cuDevicePrimaryCtxRetain(context, device), "cuDevicePrimaryCtxRetain");
        checkInit(cuCtxSetCurrent(context), "cuCtxSetCurrent");
        for (String fatbin : build.fatbins()) {
            CUmodule m = new CUmodule();
            checkInit(cuModuleLoadData(m, build.fatbin(fatbin)), "cuModuleLoadData(" + fatbin + ")");
            modules.put(fatbin, m);
        }
    }

    /**
     * Empty when {@link #get()} will work; otherwise one line saying why CUDA cannot run here: no driver
     * (libcuda.so.1 missing), cuInit failing, no device, a driver older than the toolkit that built the fatbins, a
     * GPU the fatbins have no code for, or a build without kernels. Probed once (creating the context on success);
     * never throws.
     */
    public static synchronized Optional<String> unavailableReason() {
        if (unavailable == null) {
            try {
                instance = open();
                unavailable = Optional.empty();
            } catch (CudaException | IllegalStateException e) {
                unavailable = Optional.of(e.getMessage());
            } catch (LinkageError e) {
                unavailable = Optional.of(nativeLibraryProblem(e));
            } catch (RuntimeException e) {
                unavailable = Optional.of("CUDA could not be initialized: " + e);
            }
        }
        return unavailable;
    }

    /** The context, created on first use. @throws CudaException saying why when CUDA cannot run here */
    public static synchronized CudaContext get() {
        Optional<String> why = unavailableReason();
        if (why.isPresent()) {
            throw new CudaException("CUDA is not available: " + why.get());
        }
        return instance;
    }

    private static CudaContext open() {
        KernelBuild build = KernelBuild.load();
        if (build.skipped() || build.fatbins().isEmpty()) {
            throw new IllegalStateException(KernelBuild.SKIPPED);
        }
        int init = cuInit(0);
        if (init == CUresult.CUDA_ERROR_NO_DEVICE) {
            throw new CudaException("no CUDA device (cuInit: CUDA_ERROR_NO_DEVICE)");
        }
        checkInit(init, "cuInit");
        int[] count = new int[1];
        checkInit(cuDeviceGetCount(count), "cuDeviceGetCount");
        if (count[0] == 0) {
            throw new CudaException("no CUDA device (cuDeviceGetCount: 0)");
        }
        int[] driver = new int[1];
        checkInit(cuDriverGetVersion(driver), "cuDriverGetVersion");
        Optional<String> old = KernelBuild.driverTooOld(driver[0], build.cudaVersionInt());
        if (old.isPresent()) {
            throw new CudaException(old.get());
        }
        return new CudaContext(build, driver[0]);
    }

    /**
     * The reason for a failure to load JCuda's native library: the library itself needs libcuda.so.1, which only an
     * installed NVIDIA driver provides.
     */
    static String nativeLibraryProblem(Throwable e) {
        String all = String.valueOf(e.getMessage()) + (e.getCause() == null ? "" : " " + e.getCause());
        if (all.contains("libcuda.so")) {
            return "no CUDA driver (libcuda.so.1 not found)";
        }
        String first = String.valueOf(e.getMessage()).lines().findFirst().orElse("");
        return "the JCuda driver library could not be loaded: " + e.getClass().getSimpleName() + ": " + first;
    }

    /** "NVIDIA H100 80GB HBM3 (sm_90, 79.1 GiB), driver CUDA 13.0, kernels built with CUDA 13.0". */
    public String describe() {
        return String.format(
                Locale.ROOT,
                "%s (sm_%d, %.1f GiB), driver CUDA %s, kernels built with CUDA %s",
                gpu,
                computeCapability,
                totalMemory / (double) (1L << 30),
                KernelBuild.version(driverVersion),
                build.cudaVersion());
    }

    /** cuDriverGetVersion: 13000 for CUDA 13.0. */
    public int driverVersion() {
        return driverVersion;
    }

    /**
     * Runs a cuBLAS or cuSOLVER call with this context current on the calling thread and held (those libraries
     * work in the current context), then cuCtxSynchronize, so that an asynchronous failure names {@code what} as
     * after m2q's own launches. A failure of the call itself throws {@link CudaException} naming it.
     */
    synchronized void vendorCall(String what, VendorBlas.Call call) {
        enter();
        try {
            call.run();
        } catch (CudaException | IllegalArgumentException | IllegalStateException e) {
            throw e;
        } catch (Throwable e) {
            throw new CudaException(what + ": " + e);
        }
        check(cuCtxSynchronize(), what);
    }

    /** Major·10 + minor: 90 for an H100, 89 for an L4. */
    public int computeCapability() {
        return computeCapability;
    }

    public long totalMemory() {
        return totalMemory;
    }

    /** cuMemGetInfo's free bytes now. */
    public synchronized long freeMemory() {
        enter();
        long[] free = new long[1];
        long[] total = new long[1];
        check(cuMemGetInfo(free, total), "cuMemGetInfo");
        return free[0];
    }

    /** cuMemAlloc of {@code bytes} (contents undefined); 0 bytes allocates nothing. */
    public synchronized DeviceBuffer alloc(long bytes) {
        if (bytes < 0) {
            throw new IllegalArgumentException("alloc(" + bytes + "): negative size");
        }
        enter();
        CUdeviceptr p = new CUdeviceptr();
        if (bytes > 0) {
            check(cuMemAlloc(p, bytes), "cuMemAlloc(" + bytes + " bytes)");
        }
        return new DeviceBuffer(this, p, bytes);
    }

    /** A new buffer holding a[off, off + len), fp32. */
    public synchronized DeviceBuffer upload(float[] a, int off, int len) {
        Objects.checkFromIndexSize(off, len, a.length);
        return uploaded(Pointer.to(a).withByteOffset(4L * off), 4L * len);
    }

    /** A new buffer holding a[off, off + len), int32. */
    public synchronized DeviceBuffer upload(int[] a, int off, int len) {
        Objects.checkFromIndexSize(off, len, a.length);
        return uploaded(Pointer.to(a).withByteOffset(4L * off), 4L * len);
    }

    /** A new buffer holding a[off, off + len), 16-bit values (bf16 bits). */
    public synchronized DeviceBuffer upload(short[] a, int off, int len) {
        Objects.checkFromIndexSize(off, len, a.length);
        return uploaded(Pointer.to(a).withByteOffset(2L * off), 2L * len);
    }

    /** A new buffer holding the raw bytes of {@code s} (mapped bf16 weights, packed int32 qweight, …). */
    public synchronized DeviceBuffer upload(MemorySegment s) {
        long n = s.byteSize();
        DeviceBuffer b = alloc(n);
        try {
            if (s.isNative()) {
                for (long off = 0; off < n; off += NATIVE_CHUNK) {
                    long len = Math.min(NATIVE_CHUNK, n - off);
                    check(
                            cuMemcpyHtoD(
                                    b.ptr().withByteOffset(off),
                                    Pointer.to(s.asSlice(off, len).asByteBuffer()),
                                    len),
                            "cuMemcpyHtoD(" + len + " bytes)");
                }
            } else {
                byte[] staging = new byte[(int) Math.min(STAGING, n)];
                for (long off = 0; off < n; off += staging.length) {
                    int len = (int) Math.min(staging.length, n - off);
                    MemorySegment.copy(s, ValueLayout.JAVA_BYTE, off, staging, 0, len);
                    check(
                            cuMemcpyHtoD(b.ptr().withByteOffset(off), Pointer.to(staging), len),
                            "cuMemcpyHtoD(" + len + " bytes)");
                }
            }
        } catch (RuntimeException e) {
            b.close();
            throw e;
        }
        return b;
    }

    /** Copies a[off, off + len) into dst at byte offset dstByteOff. */
    public synchronized void uploadInto(DeviceBuffer dst, long dstByteOff, float[] a, int off, int len) {
        Objects.checkFromIndexSize(off, len, a.length);
        long bytes = 4L * len;
        checkRange(dst, dstByteOff, bytes, "uploadInto");
        if (bytes > 0) {
            enter();
            check(
                    cuMemcpyHtoD(
                            dst.ptr().withByteOffset(dstByteOff), Pointer.to(a).withByteOffset(4L * off), bytes),
                    "cuMemcpyHtoD(" + bytes + " bytes)");
        }
    }

    /** Copies len fp32 values from src at byte offset srcByteOff into dst[off, off + len). */
    public synchronized void download(DeviceBuffer src, long srcByteOff, float[] dst, int off, int len) {
        Objects.checkFromIndexSize(off, len, dst.length);
        downloaded(src, srcByteOff, Pointer.to(dst).withByteOffset(4L * off), 4L * len);
    }

    /** Copies len int32 values from src at byte offset srcByteOff into dst[off, off + len). */
    public synchronized void download(DeviceBuffer src, long srcByteOff, int[] dst, int off, int len) {
        Objects.checkFromIndexSize(off, len, dst.length);
        downloaded(src, srcByteOff, Pointer.to(dst).withByteOffset(4L * off), 4L * len);
    }

    /** Copies len fp64 values from src at byte offset srcByteOff into dst[off, off + len). */
    public synchronized void download(DeviceBuffer src, long srcByteOff, double[] dst, int off, int len) {
        Objects.checkFromIndexSize(off, len, dst.length);
        downloaded(src, srcByteOff, Pointer.to(dst).withByteOffset(8L * off), 8L * len);
    }

    /** Sets every byte of b to 0 (cuMemsetD8). */
    public synchronized void zero(DeviceBuffer b) {
        checkLive(b, "zero");
        if (b.bytes() > 0) {
            enter();
            check(cuMemsetD8(b.ptr(), (byte) 0, b.bytes()), "cuMemsetD8(" + b.bytes() + " bytes)");
        }
    }

    /** Device-to-device copy of {@code bytes} bytes. */
    public synchronized void copy(DeviceBuffer dst, long dstOff, DeviceBuffer src, long srcOff, long bytes) {
        checkRange(dst, dstOff, bytes, "copy (destination)");
        checkRange(src, srcOff, bytes, "copy (source)");
        if (bytes > 0) {
            enter();
            check(
                    cuMemcpyDtoD(dst.ptr().withByteOffset(dstOff), src.ptr().withByteOffset(srcOff), bytes),
                    "cuMemcpyDtoD(" + bytes + " bytes)");
        }
    }

    /** The kernel {@code name} of the loaded fatbins (cached). @throws CudaException when none has it */
    public synchronized Kernel kernel(String name) {
        Kernel k = kernels.get(name);
        if (k != null) {
            return k;
        }
        enter();
        for (CUmodule m : modules.values()) {
            CUfunction f = new CUfunction();
            int r = cuModuleGetFunction(f, m, name);
            if (r == CUresult.CUDA_SUCCESS) {
                k = new Kernel(this, name, f);
                kernels.put(name, k);
                return k;
            }
            if (r != CUresult.CUDA_ERROR_NOT_FOUND) {
                check(r, "cuModuleGetFunction(" + name + ")");
            }
        }
        throw new CudaException("no kernel named " + name + " in " + String.join(", ", modules.keySet()));
    }

    /** cuCtxSynchronize; a failure names {@code what}. */
    public synchronized void synchronize(String what) {
        enter();
        check(cuCtxSynchronize(), what);
    }

    /**
     * Milliseconds of device time that {@code work} took: an event recorded before and after, then synchronized.
     * {@code work} runs on this thread, holding the context (other threads' calls wait).
     */
    public synchronized float elapsedMillis(Runnable work) {
        enter();
        CUevent start = new CUevent();
        CUevent stop = new CUevent();
        check(cuEventCreate(start, 0), "cuEventCreate");
        try {
            check(cuEventCreate(stop, 0), "cuEventCreate");
            try {
                check(cuEventRecord(start, null), "cuEventRecord");
                work.run();
                enter();
                check(cuEventRecord(stop, null), "cuEventRecord");
                check(cuEventSynchronize(stop), "cuEventSynchronize");
                float[] ms = new float[1];
                check(cuEventElapsedTime(ms, start, stop), "cuEventElapsedTime");
                return ms[0];
            } finally {
                cuEventDestroy(stop);
            }
        } finally {
            cuEventDestroy(start);
        }
    }

    synchronized void launch(Kernel k, int[] dims, int sharedBytes, Object[] args) {
        Pointer[] params = new Pointer[args.length];
        for (int i = 0; i < args.length; i++) {
            params[i] = switch (args[i]) {
                case DeviceBuffer b -> {
                    if (b.isClosed()) {
                        throw new IllegalStateException(k.name() + ": argument " + i + " is a closed DeviceBuffer");
                    }
                    yield Pointer.to(b.ptr());
                }
                case CUdeviceptr p -> Pointer.to(p);
                case Integer v -> Pointer.to(new int[] {v});
                case Long v -> Pointer.to(new long[] {v});
                case Float v -> Pointer.to(new float[] {v});
                case Double v -> Pointer.to(new double[] {v});
                case null -> throw new IllegalArgumentException(k.name() + ": argument " + i + " is null");
                default ->
                    throw new IllegalArgumentException(k.name() + ": argument " + i + " is a "
                            + args[i].getClass().getName()
                            + "; pass DeviceBuffer, CUdeviceptr, Integer, Long, Float or Double");
            };
        }
        enter();
        int r = cuLaunchKernel(
                k.function(),
                dims[0],
                dims[1],
                dims[2],
                dims[3],
                dims[4],
                dims[5],
                sharedBytes,
                null,
                Pointer.to(params),
                null);
        if (r != CUresult.CUDA_SUCCESS) {
            check(
                    r,
                    String.format(
                            Locale.ROOT,
                            "%s: cuLaunchKernel (grid %d×%d×%d, block %d×%d×%d, %d bytes shared)",
                            k.name(),
                            dims[0],
                            dims[1],
                            dims[2],
                            dims[3],
                            dims[4],
                            dims[5],
                            sharedBytes));
        }
        check(cuCtxSynchronize(), k.name());
    }

    synchronized void setMaxDynamicShared(Kernel k, int bytes) {
        enter();
        check(
                cuFuncSetAttribute(
                        k.function(), CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes),
                k.name() + ": cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES, " + bytes + ")");
    }

    synchronized void free(DeviceBuffer b) {
        if (!b.markClosed() || b.bytes() == 0 || broken != null) {
            return; // closed already, nothing allocated, or freed with the dead context
        }
        enter();
        check(cuMemFree(b.raw()), "cuMemFree(" + b.bytes() + " bytes)");
    }

    private DeviceBuffer uploaded(Pointer host, long bytes) {
        DeviceBuffer b = alloc(bytes);
        if (bytes > 0) {
            try {
                check(cuMemcpyHtoD(b.ptr(), host, bytes), "cuMemcpyHtoD(" + bytes + " bytes)");
            } catch (RuntimeException e) {
                b.close();
                throw e;
            }
        }
        return b;
    }

    private void downloaded(DeviceBuffer src, long srcByteOff, Pointer host, long bytes) {
        checkRange(src, srcByteOff, bytes, "download");
        if (bytes > 0) {
            enter();
            check(cuMemcpyDtoH(host, src.ptr().withByteOffset(srcByteOff), bytes), "cuMemcpyDtoH(" + bytes + " bytes)");
        }
    }

    private void checkLive(DeviceBuffer b, String what) {
        if (b.context() != this) {
            throw new IllegalArgumentException(what + ": the buffer belongs to another context");
        }
        if (b.isClosed()) {
            throw new IllegalStateException(what + ": " + b);
        }
    }

    private void checkRange(DeviceBuffer b, long off, long bytes, String what) {
        checkLive(b, what);
        if (off < 0 || bytes < 0 || off > b.bytes() - bytes) {
            throw new IndexOutOfBoundsException(
                    what + ": bytes [" + off + ", " + off + " + " + bytes + ") outside a buffer of " + b.bytes());
        }
    }

    /** Refuses work on a context a sticky error killed, and makes the context current on this thread. */
    private void enter() {
        if (broken != null) {
            throw new CudaException(
                    "the CUDA context is unusable after an earlier error (" + broken + "); restart the process");
        }
        check(cuCtxSetCurrent(context), "cuCtxSetCurrent");
    }

    private void check(int result, String what) {
        if (result == CUresult.CUDA_SUCCESS) {
            return;
        }
        String message = what + ": " + CUresult.stringFor(result);
        if (STICKY.contains(result) && broken == null) {
            broken = message;
        }
        throw new CudaException(message);
    }

    private static void checkInit(int result, String what) {
        if (result != CUresult.CUDA_SUCCESS) {
            throw new CudaException(what + ": " + CUresult.stringFor(result));
        }
    }

    private static String cString(byte[] b) {
        int n = 0;
        while (n < b.length && b[n] != 0) {
            n++;
        }
        return new String(b, 0, n, StandardCharsets.UTF_8);
    }
}
