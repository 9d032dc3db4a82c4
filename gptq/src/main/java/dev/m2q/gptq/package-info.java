/** GPTQ (Frantar et al., 2022) and round-to-nearest 4-bit weight quantization; filled in by the GPTQ issue. */
package dev.m2q.gptq;
