#!/usr/bin/env bash
# Compiles every SRC/*.cu into OUT/NAME.fatbin (SASS for sm_80, sm_86, sm_89, sm_90 and PTX compute_90 for the
# JIT on newer GPUs) with the nvcc on PATH, and writes OUT/kernels.properties: the fatbins and the toolkit that
# built them (CudaContext refuses a driver older than that toolkit). Run by Maven in generate-resources.
#
#   build.sh SRC OUT SKIP     SKIP=true: no nvcc; OUT gets no fatbins and kernels.properties says so
#
# A fatbin is rebuilt only when it is older than its .cu, any SRC/*.cuh, this script, or was built by another
# nvcc release. A .cu that does not compile fails the build.
set -euo pipefail
src="$1"
out="$2"
skip="${3:-false}"
mkdir -p "$out"
props="$out/kernels.properties"

write_props() {
  local tmp="$props.tmp"
  {
    echo "# Written by kernels/src/main/cuda/build.sh: the CUDA modules of this build and the toolkit that built them."
    printf '%s\n' "$@"
  } >"$tmp"
  if cmp -s "$tmp" "$props"; then rm -f "$tmp"; else mv "$tmp" "$props"; fi
}

if [ "$skip" = "true" ]; then
  rm -f "$out"/*.fatbin
  write_props "skipped=true" "fatbins="
  echo "[m2q] -Dm2q.nvcc.skip=true: building without CUDA kernels"
  exit 0
fi

if ! command -v nvcc >/dev/null 2>&1; then
  echo "[m2q] nvcc is not on PATH: the CUDA kernels (kernels/src/main/cuda/*.cu) need the CUDA toolkit 12.x or" \
    "newer. Put its bin/ on PATH, or build without CUDA kernels with -Dm2q.nvcc.skip=true." >&2
  exit 1
fi
release="$(nvcc --version | sed -n 's/.*release \([0-9][0-9]*\)\.\([0-9][0-9]*\), V\([0-9.]*\).*/\1 \2 \3/p')"
read -r major minor full <<<"$release" || true
if [ -z "${major:-}" ] || [ -z "${minor:-}" ]; then
  echo "[m2q] cannot read the CUDA release from 'nvcc --version':" >&2
  nvcc --version >&2
  exit 1
fi
previous="$(sed -n 's/^nvcc.release=//p' "$props" 2>/dev/null || true)"

shopt -s nullglob
sources=("$src"/*.cu)
if [ ${#sources[@]} -eq 0 ]; then
  echo "[m2q] no .cu files in $src" >&2
  exit 1
fi
deps=("$src"/*.cuh "$0")

for f in "$out"/*.fatbin; do
  name="$(basename "$f" .fatbin)"
  [ -f "$src/$name.cu" ] || rm -f "$f"
done

fatbins=()
for cu in "${sources[@]}"; do
  name="$(basename "$cu" .cu)"
  fatbin="$out/$name.fatbin"
  fatbins+=("$name.fatbin")
  fresh=yes
  if [ ! -f "$fatbin" ] || [ "$previous" != "$full" ] || [ "$cu" -nt "$fatbin" ]; then
    fresh=""
  else
    for d in "${deps[@]}"; do
      if [ "$d" -nt "$fatbin" ]; then fresh=""; fi
    done
  fi
  [ -n "$fresh" ] && continue
  start=$(date +%s%N)
  # --threads 0: one nvcc thread per target architecture, as many as the machine has cores.
  if ! nvcc -fatbin -O3 -std=c++17 --threads 0 -I "$src" \
    -gencode arch=compute_80,code=sm_80 \
    -gencode arch=compute_86,code=sm_86 \
    -gencode arch=compute_89,code=sm_89 \
    -gencode 'arch=compute_90,code=[sm_90,compute_90]' \
    -o "$fatbin.tmp" "$cu"; then
    rm -f "$fatbin.tmp"
    echo "[m2q] nvcc failed on $cu" >&2
    exit 1
  fi
  mv "$fatbin.tmp" "$fatbin"
  echo "[m2q] nvcc $name.cu -> $name.fatbin ($(stat -c %s "$fatbin") bytes, $((($(date +%s%N) - start) / 1000000)) ms)"
done

fatbin_list="$(IFS=,; echo "${fatbins[*]}")"
write_props \
  "skipped=false" \
  "cuda.version=$major.$minor" \
  "cuda.version.int=$((major * 1000 + minor * 10))" \
  "nvcc.release=$full" \
  "targets=sm_80,sm_86,sm_89,sm_90,compute_90" \
  "fatbins=$fatbin_list"
