package dev.m2q.kernels;

import java.io.Serial;

/** Errors from the driver, naming the call or kernel: "m2q_gemm_bf16: CUDA_ERROR_ILLEGAL_ADDRESS". */
public final class CudaException extends RuntimeException {
    @Serial
    private static final long serialVersionUID = 1L;

    public CudaException(String message) {
        super(message);
    }
}
