/** CUDA kernels through the JCuda driver API, implementing core's Kernels SPI; filled in by the CUDA issue. */
package dev.m2q.kernels;
