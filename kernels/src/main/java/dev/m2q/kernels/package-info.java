/**
 * The CUDA backend of core's Kernels SPI, through the JCuda driver API only (its native library needs nothing but
 * libcuda): {@link dev.m2q.kernels.CudaContext} loads the fatbins that src/main/cuda/build.sh compiled at build time,
 * {@link dev.m2q.kernels.CudaKernelsProvider} offers them to {@code --device cuda|auto}.
 */
package dev.m2q.kernels;
