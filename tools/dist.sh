#!/usr/bin/env bash
# Packs m2q for a Linux x86-64 GPU machine without a JDK: a jlinked Java runtime trimmed to the modules the CLI
# jar uses (jdeps), the jar, and a launcher, in target/dist/m2q-linux-x86_64.tar.gz. Run after ./mvnw package
# (with nvcc on PATH, so that the jar carries the CUDA kernels). The machine needs only the NVIDIA driver.
#
#   tools/dist.sh            then, there:  tar xzf m2q-linux-x86_64.tar.gz && m2q/bin/m2q --help
#
# tools/gpu-dist.sh reuses it through three variables: M2Q_DIST_DIR (where m2q/ is built, default target/dist),
# M2Q_DIST_EXTRA_MODULES (more runtime modules, comma-separated) and M2Q_DIST_JLINK_COMPRESS (jlink's --compress,
# default zip-6); M2Q_DIST_NO_TAR=1 stops before the tarball.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$here/tools/find-jdk.sh"
jdk="$(m2q_find_jdk)" || exit 2
jar="$here/cli/target/m2q.jar"
dist="${M2Q_DIST_DIR:-$here/target/dist}"
out="$dist/m2q"
tarball="$dist/m2q-linux-x86_64.tar.gz"

if [ ! -f "$jar" ]; then
  echo "dist: $jar is missing; build it first with ./mvnw package (or ./mvnw -pl cli -am package -DskipTests)" >&2
  exit 2
fi
if ! "$jdk/bin/jar" tf "$jar" | grep -q '^dev/m2q/kernels/cuda/.*\.fatbin$'; then
  echo "dist: warning: $jar has no CUDA kernels (built with -Dm2q.nvcc.skip or without nvcc);" \
    "this runtime will run on the CPU only" >&2
fi

# The modules the jar's classes need, plus the Vector API (an incubator module: jdeps does not list it by default).
modules="$("$jdk/bin/jdeps" --multi-release 25 --ignore-missing-deps --print-module-deps "$jar")"
extra="${M2Q_DIST_EXTRA_MODULES:-}"
modules="$(printf '%s\n' ${modules//,/ } jdk.incubator.vector ${extra//,/ } | sort -u | paste -sd, -)"
echo "dist: runtime modules: $modules"

rm -rf "$out" "$tarball"
mkdir -p "$out/bin" "$out/lib"
"$jdk/bin/jlink" --add-modules "$modules" --strip-debug --no-man-pages --no-header-files \
  --compress "${M2Q_DIST_JLINK_COMPRESS:-zip-6}" \
  --output "$out/runtime"
cp "$jar" "$out/lib/m2q.jar"
cp "$here/tools/launch-java.sh" "$out/lib/launch-java.sh"

# The same JVM flags and stderr filter (lib/launch-java.sh) as the repository's ./m2q launcher.
cat >"$out/bin/m2q" <<'EOF'
#!/usr/bin/env bash
# m2q with its own Java runtime (runtime/, jlinked by tools/dist.sh); the GPU needs only the NVIDIA driver.
set -euo pipefail
home="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
source "$home/lib/launch-java.sh"
m2q_run_java "$home/runtime/bin/java" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED \
  -Djava.awt.headless=true $(m2q_gc_flag) $(m2q_thp_flag) ${M2Q_JAVA_OPTS:-} -jar "$home/lib/m2q.jar" "$@"
EOF
chmod +x "$out/bin/m2q"

if [ "${M2Q_DIST_NO_TAR:-0}" = 1 ]; then
  exit 0
fi
tar -C "$dist" -czf "$tarball" m2q
echo "dist: $tarball ($(du -h "$tarball" | cut -f1); runtime $(du -sh "$out/runtime" | cut -f1) unpacked)"
