# Sourced by ./m2q and by the dist's bin/m2q (tools/dist.sh copies it to lib/): m2q_run_java runs the JVM and
# exits with its status, with stderr passed through a filter that drops the line
#   WARNING: Using incubator modules: jdk.incubator.vector
# which the JVM prints at every start when the Vector API module is added. JDK 25 has no option to silence it
# (checked: -XX:-PrintWarnings, -Xlog:disable and JDK_JAVA_OPTIONS leave it; it is printed by the module system
# before main), and with it no failure of m2q would be the one line the exit-code contract promises.
#
# What stays as it was: stdout and stdin are the JVM's own (untouched, so terminal detection is unchanged); every
# other stderr byte passes in order and unbuffered (progress bars redrawn with \r included); the exit status is the
# JVM's. INT, TERM and HUP sent to the launcher are forwarded to the JVM, which runs its shutdown as before (a
# Ctrl-C reaches both through the terminal's process group; the JVM handles a second INT as a no-op), and the
# filter ignores them so that it relays the JVM's last lines. The launcher returns only once the filter has
# written everything. Needs bash 4.4 or later (waiting for a process substitution).

# The filter: looks for the warning among the JVM's own start-up lines (JAVA_TOOL_OPTIONS / JDK_JAVA_OPTIONS
# notes, VM warnings), passes those and everything else through, and becomes a plain cat after the warning or the
# first line that is not the JVM's.
m2q_drop_incubator_warning() {
  trap '' INT TERM HUP QUIT
  local line
  while IFS= read -r line; do
    case "$line" in
      "WARNING: Using incubator modules: jdk.incubator.vector") exec cat ;;
      "NOTE: Picked up "* | "Picked up "* | *" VM warning: "* | "WARNING: "*) printf '%s\n' "$line" ;;
      *) printf '%s\n' "$line"; exec cat ;;
    esac
  done
  printf '%s' "$line" # the end of the input: a last line without a newline, if there is one
}

# m2q_gc_flag: the collector m2q runs with, G1, unless M2Q_JAVA_OPTS names one itself (-XX:+Use...GC). Measured
# (docs/BENCHMARKS.md, "Garbage collection"): AutoRound allocates GB-sized arrays per layer, which G1 places in the
# old generation at once (humongous regions), while the Parallel collector's young generation took them and then
# copied them: 26 s of pauses in a 100 s quarter-size layer, one of 14 s, against 1.1 s in all under G1.
m2q_gc_flag() {
  case " ${M2Q_JAVA_OPTS:-} " in
    *" -XX:+Use"*"GC "*) ;;
    *) printf '%s' "-XX:+UseG1GC" ;;
  esac
}

# m2q_thp_flag [FILE]: -XX:+UseTransparentHugePages where the kernel hands out transparent huge pages only on
# request (FILE, /sys/kernel/mm/transparent_hugepage/enabled by default, reads "[madvise]"), unless M2Q_JAVA_OPTS
# names the flag itself. Measured (docs/BENCHMARKS.md, "Transparent huge pages"): a 32B-shaped GPTQ layer touches
# GB-sized arrays for the first time (Hessians, their factors, W's copies), and on a KVM guest each 4 KiB page
# fault cost about 14 us; with 2 MiB pages the layer took 133 s instead of 204 s. Under "[always]" the kernel
# already does it, and under "[never]" (or without the file: not Linux) the JVM would only warn.
m2q_thp_flag() {
  local file="${1:-/sys/kernel/mm/transparent_hugepage/enabled}" mode=""
  case " ${M2Q_JAVA_OPTS:-} " in
    *"TransparentHugePages"*) return 0 ;;
  esac
  if [ -r "$file" ]; then
    mode="$(cat "$file" 2>/dev/null || true)"
  fi
  case "$mode" in
    *"[madvise]"*) printf '%s' "-XX:+UseTransparentHugePages" ;;
  esac
}

# m2q_run_java JAVA [ARG...]: runs JAVA ARG... as described above and exits with its status.
m2q_run_java() {
  set +e
  local err_fd filter_pid java_pid rc status signalled
  exec {err_fd}> >(m2q_drop_incubator_warning >&2)
  filter_pid=$!
  # An asynchronous command of a non-interactive shell starts with INT and QUIT ignored and stdin from /dev/null;
  # the JVM must have neither (it installs its shutdown handler only for a signal that is not ignored).
  (
    trap - INT QUIT
    exec "$@" 2>&"$err_fd" {err_fd}>&-
  ) <&0 &
  java_pid=$!
  exec {err_fd}>&-
  trap 'signalled=1; kill -INT "$java_pid" 2>/dev/null' INT
  trap 'signalled=1; kill -TERM "$java_pid" 2>/dev/null' TERM
  trap 'signalled=1; kill -HUP "$java_pid" 2>/dev/null' HUP
  # wait returns early (status > 128) when a trapped signal arrives; then wait again. A signal that arrives just
  # after the JVM's status was collected makes the next wait find no such child (127; bash 5.2 answers -1): then
  # the status already collected is the JVM's.
  rc=""
  while :; do
    signalled=""
    wait "$java_pid"
    status=$?
    if [ -z "$signalled" ]; then
      if [ -z "$rc" ] || { [ "$status" -ge 0 ] && [ "$status" -ne 127 ]; }; then rc=$status; fi
      break
    fi
    rc=$status
  done
  trap - INT TERM HUP
  wait "$filter_pid"
  exit "$rc"
}
