#!/usr/bin/env bash
# Remove from an unpacked bundle the runtime-only libraries the system already has.
#
# Usage: tools/gpu/drop_system_libs.sh DEPS LIST < SONAMES
#   DEPS     the unpacked deps tree (tools/gpu/device_build.sh's $PREFIX/deps)
#   LIST     paths relative to DEPS, one a line (make_bundle.sh --list-libs: files and links)
#   SONAMES  on stdin: the sonames the system's loader knows (`ldconfig -p | awk '{print $1}'`)
# A listed path whose name is a soname (libfoo.so.N, libfoo-1.2.so) the system has is removed,
# with the file its link points to, so the loader takes the system's copy. Prints the sonames
# removed, space-separated.
set -euo pipefail
[ $# = 2 ] || { echo "drop_system_libs: usage: DEPS LIST < SONAMES" >&2; exit 2; }
deps=$1 list=$2
[ -d "$deps" ] || { echo "drop_system_libs: error: no folder '$deps'" >&2; exit 1; }
[ -f "$list" ] || { echo "drop_system_libs: error: no list '$list'" >&2; exit 1; }
system=$(cat)
dropped=()
while read -r rel; do
  [ -n "$rel" ] || continue
  path=$deps/$rel
  name=$(basename "$rel")
  [ -e "$path" ] || [ -L "$path" ] || continue
  [[ "$name" =~ \.so\.[0-9]+$ || "$name" =~ -[0-9.]+\.so$ ]] || continue
  grep -qxF "$name" <<< "$system" || continue
  target=$(readlink -f "$path" || true)
  rm -f "$path"
  case "$target" in "$deps"/*) [ "$target" != "$path" ] && rm -f "$target" ;; esac
  dropped+=("$name")
done < "$list"
echo "${dropped[*]}"
