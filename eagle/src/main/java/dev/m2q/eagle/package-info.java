/** EAGLE-3 speculative-decoding draft heads: data, training, export; filled in by the EAGLE-3 issue. */
package dev.m2q.eagle;
