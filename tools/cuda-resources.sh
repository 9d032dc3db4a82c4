#!/usr/bin/env bash
# Compiles kernels/src/main/cuda/*.cu with the build's flags plus --resource-usage (no GPU needed) and prints one
# line per kernel and target: registers, spill stores/loads, stack frame, static shared memory. A kernel with
# spills, or a warning, is what to look at first.
#
#   tools/cuda-resources.sh [sm_90]     one target only (sm_80, sm_86, sm_89 or sm_90); default all four
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
src="$here/kernels/src/main/cuda"
only="${1:-}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
printf '%-28s %-6s %5s %7s %7s %6s %6s\n' kernel target regs spill_st spill_ld stack smem
for cu in "$src"/*.cu; do
  name="$(basename "$cu" .cu)"
  log="$tmp/$name.log"
  nvcc -fatbin -O3 -std=c++17 -I "$src" --resource-usage \
    -gencode arch=compute_80,code=sm_80 \
    -gencode arch=compute_86,code=sm_86 \
    -gencode arch=compute_89,code=sm_89 \
    -gencode 'arch=compute_90,code=[sm_90,compute_90]' \
    -o "$tmp/$name.fatbin" "$cu" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
  grep -iE 'warning' "$log" >&2 || true
  awk -v only="$only" '
    /Compiling entry function/ { match($0, /'\''[^'\'']+'\''/); fn = substr($0, RSTART + 1, RLENGTH - 2);
                                 match($0, /for '\''sm_[0-9]+'\''/); tg = substr($0, RSTART + 5, RLENGTH - 6) }
    /bytes stack frame/        { stack = $1 + 0; st = $5 + 0; ld = $9 + 0 }
    /Used [0-9]+ registers/    { match($0, /Used [0-9]+ registers/); regs = substr($0, RSTART + 5, RLENGTH - 15);
                                 smem = 0; if (match($0, /[0-9]+ bytes smem/)) smem = substr($0, RSTART, RLENGTH - 11);
                                 if (only == "" || only == tg) printf "%-28s %-6s %5d %7d %7d %6d %6d\n", fn, tg, regs, st, ld, stack, smem }
  ' "$log"
done
