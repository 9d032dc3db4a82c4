/** AutoRound (SignRound) tuned rounding and clipping; filled in by the AutoRound issue. */
package dev.m2q.autoround;
