#!/usr/bin/env bash
# Packs what tools/gpu-check.sh needs on a Linux x86-64 GPU machine without a JDK or Maven, in one file,
# target/gpu-dist/m2q-gpu-check.tar.xz (git-ignored): tools/dist.sh's runtime and bin/m2q (the runtime also gets
# the modules the JUnit console launcher uses), plus
#   lib/junit-platform-console-standalone.jar  the launcher for the @Tag("gpu") tests, at the project's JUnit;
#   lib/m2q-kernels-tests.jar                  the kernels module's test classes (they need only m2q.jar besides);
#   lib/m2q-tools.jar                          tools/synth/SynthCheckpoint, compiled (the runtime has no javac);
#   bin/gpu-check, lib/gpu-check.py            tools/gpu-check.sh and its helper (summaries, code diff, torch).
# The runtime is jlinked uncompressed and its native libraries stripped, and the whole is packed with xz: about
# half of what dist.sh's gzip of a zip-compressed runtime takes, so that it travels beside the working tree
# (the fixture is not packed: the check reads it from the repository it runs in).
#
#   ./mvnw -pl cli -am package -DskipTests && ./mvnw -pl kernels -am test-compile   # with nvcc on PATH
#   tools/gpu-dist.sh
# Then, on the GPU machine, from the repository root:
#   tar xJf target/gpu-dist/m2q-gpu-check.tar.xz -C /tmp && /tmp/m2q/bin/gpu-check --out OUTDIR
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$here/tools/find-jdk.sh"
jdk="$(m2q_find_jdk)" || exit 2
dist="$here/target/gpu-dist"
tests="$here/kernels/target/test-classes"
jar="$here/cli/target/m2q.jar"

if ! "$jdk/bin/jar" tf "$jar" 2>/dev/null | grep -q '^dev/m2q/kernels/cuda/.*\.fatbin$' \
  && [ "${M2Q_GPU_DIST_CPU_ONLY:-0}" != 1 ]; then
  echo "gpu-dist: $jar is missing or has no CUDA kernels; build it with nvcc on PATH and without" \
    "-Dm2q.nvcc.skip (./mvnw -pl cli -am package -DskipTests), or set M2Q_GPU_DIST_CPU_ONLY=1 for a CPU dry run" >&2
  exit 2
fi
if [ ! -d "$tests/dev/m2q/kernels" ]; then
  echo "gpu-dist: $tests is missing; build it first with ./mvnw -pl kernels -am test-compile" >&2
  exit 2
fi

# JUnit Platform's version goes with Jupiter's: 5.x.y is 1.x.y.
jupiter="$(sed -n 's:.*<junit.version>\(.*\)</junit.version>.*:\1:p' "$here/pom.xml" | head -1)"
platform="1.${jupiter#5.}"
launcher="$dist/junit-platform-console-standalone-$platform.jar"
mkdir -p "$dist"
if [ ! -f "$launcher" ]; then
  (cd "$here" && ./mvnw -q -B dependency:copy \
    -Dartifact="org.junit.platform:junit-platform-console-standalone:$platform" -DoutputDirectory="$dist") || {
    echo "gpu-dist: could not fetch org.junit.platform:junit-platform-console-standalone:$platform" \
      "from Maven Central; copy that jar to $launcher" >&2
    exit 2
  }
fi

extra="$("$jdk/bin/jdeps" --multi-release 25 --ignore-missing-deps --print-module-deps "$launcher")"
M2Q_DIST_DIR="$dist" M2Q_DIST_EXTRA_MODULES="$extra" M2Q_DIST_JLINK_COMPRESS=zip-0 M2Q_DIST_NO_TAR=1 \
  "$here/tools/dist.sh"
out="$dist/m2q"
if command -v strip >/dev/null; then
  find "$out/runtime" -name '*.so' -exec strip --strip-unneeded {} +
fi

cp "$launcher" "$out/lib/junit-platform-console-standalone.jar"
"$jdk/bin/jar" --create --file "$out/lib/m2q-kernels-tests.jar" -C "$tests" .
classes="$(mktemp -d)"
trap 'rm -rf "$classes"' EXIT
"$jdk/bin/javac" -nowarn -d "$classes" -cp "$jar" "$here/tools/synth/SynthCheckpoint.java"
"$jdk/bin/jar" --create --file "$out/lib/m2q-tools.jar" -C "$classes" .
cp "$here/tools/gpu-check.sh" "$out/bin/gpu-check"
cp "$here/tools/gpu-check.py" "$out/lib/gpu-check.py"
chmod +x "$out/bin/gpu-check"

tarball="$dist/m2q-gpu-check.tar.xz"
rm -f "$tarball"
tar -C "$dist" -cf - m2q | xz -6 -T2 >"$tarball"
echo "gpu-dist: $tarball ($(du -h "$tarball" | cut -f1); $(du -sh "$out" | cut -f1) unpacked)"
