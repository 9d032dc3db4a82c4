# Sourced by ./mvnw and ./m2q: prints the home of a JDK whose feature version is at least 25.
m2q_jdk_feature() {
  local home="$1"
  [ -x "$home/bin/java" ] && [ -x "$home/bin/javac" ] || return 1
  local release="$home/release" v
  if [ -f "$release" ]; then
    v="$(sed -n 's/^JAVA_VERSION="\([0-9]*\).*/\1/p' "$release")"
  else
    v="$("$home/bin/java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = \([0-9]*\).*/\1/p')"
  fi
  [ -n "$v" ] && echo "$v"
}

m2q_find_jdk() {
  local c v
  for c in "${M2Q_JAVA_HOME:-}" "${JAVA_HOME:-}" /usr/lib/jvm/* /opt/*jdk* /opt/java/*; do
    [ -n "$c" ] && [ -d "$c" ] || continue
    v="$(m2q_jdk_feature "$c" 2>/dev/null)" || continue
    if [ "$v" -ge 25 ] 2>/dev/null; then echo "$c"; return 0; fi
  done
  if command -v javac >/dev/null 2>&1; then
    c="$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")"
    v="$(m2q_jdk_feature "$c" 2>/dev/null)" || v=0
    if [ "$v" -ge 25 ] 2>/dev/null; then echo "$c"; return 0; fi
  fi
  echo "m2q: no JDK 25 found; install one (e.g. Temurin 25) or set M2Q_JAVA_HOME" >&2
  return 1
}
