#!/usr/bin/env bash
# Syntax- and type-checks the Objective-C++ of native/vz-bridge on Linux with Debian's clang.
#
# WHAT THIS IS: clang -fsyntax-only for an arm64/x86_64 macOS 13 target, against HAND-WRITTEN stub
# headers (native/vz-bridge/stubs: Foundation, dispatch, Virtualization — each declaration citing
# its Apple documentation page) plus node-addon-api's and Node's real headers. It catches misspelled
# classes and selectors (-Wundeclared-selector on the delegate @selector table), wrong completion
# block signatures, nullability/ARC mistakes, and APIs newer than macOS 13 used outside
# @available (-Wunguarded-availability-new).
# WHAT THIS IS NOT: a macOS build. Nothing is linked or run, and the stubs are only as right as
# their transcription from Apple's pages. Only a build on a Mac with the real SDK proves more.
#
# Usage: scripts/check-native.sh [FILE.mm ...]   (default: every native/vz-bridge/*.mm)
# A FILE outside native/vz-bridge still finds the bridge's own headers (-I native/vz-bridge).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bridge="$root/native/vz-bridge"
say() { printf 'check-native: %s\n' "$*" >&2; }

if [ "$(uname -s)" = Darwin ]; then
  say "on macOS, build the real addon instead: npx node-gyp rebuild (this check exists for hosts without the SDK)"
  exit 2
fi

clang_bin="${CLANG:-clang}"
if ! command -v "$clang_bin" >/dev/null 2>&1; then
  say "clang not found — install it: apt-get install clang (listed in scripts/host-requirements.tsv)"
  exit 2
fi

# Node's own headers (node_api.h): next to the node binary, in node-gyp's cache, or Debian's.
node_bin="$(command -v node)"
node_ver="$(node -p 'process.versions.node')"
node_inc=""
for dir in \
  "${NODE_INCLUDE_DIR:-}" \
  "$(dirname "$(dirname "$(readlink -f "$node_bin")")")/include/node" \
  "$HOME/.cache/node-gyp/$node_ver/include/node" \
  "$HOME/Library/Caches/node-gyp/$node_ver/include/node" \
  /usr/include/node; do
  if [ -n "$dir" ] && [ -f "$dir/node_api.h" ]; then node_inc="$dir"; break; fi
done
if [ -z "$node_inc" ]; then
  say "no node_api.h found (looked next to $node_bin, in node-gyp's cache for $node_ver, /usr/include/node)"
  say "set NODE_INCLUDE_DIR, or run 'npx node-gyp install' once (needs the network)"
  exit 2
fi
napi_inc="$(cd "$root" && node -p "require('node-addon-api').include_dir")"
case "$napi_inc" in /*) ;; *) napi_inc="$root/$napi_inc" ;; esac

# A darwin target makes clang honour availability(macos, …); the host's C and C++ library
# headers stand in for the SDK's (the bridge only uses POSIX calls present in both). Debian's clang
# finds no libstdc++ for a darwin target on its own, so hand it the Linux include list.
case "$(uname -m)" in
  aarch64 | arm64) target=arm64-apple-macos13 ;;
  *) target=x86_64-apple-macos13 ;;
esac
mapfile -t sys_inc < <("$clang_bin" -x c++ -E -v /dev/null -o /dev/null 2>&1 |
  sed -n '/#include <...> search starts here:/,/End of search list./p' | sed '1d;$d' |
  grep -v '/lib/clang/' | sed 's/^ *//')
isystem=()
for dir in "${sys_inc[@]}"; do isystem+=(-isystem "$dir"); done

flags=(
  --target="$target" -x objective-c++ -std=c++17 -fobjc-arc -fobjc-exceptions -fcxx-exceptions -fblocks
  -fsyntax-only -Wall -Wextra -Wno-unused-parameter -Werror
  -Wundeclared-selector -Wunguarded-availability-new -Werror=unguarded-availability
  -Wincomplete-implementation -Wobjc-missing-super-calls
  -nostdinc++
  -U__nonnull -U__nullable -U__null_unspecified -D_GNU_SOURCE # glibc's cdefs.h vs clang's darwin predefines
  -DNAPI_VERSION=8 -DNAPI_CPP_EXCEPTIONS -DNODE_GYP_MODULE_NAME=vz_bridge
  -I "$bridge/stubs" -I "$bridge" -I "$napi_inc" -I "$node_inc" "${isystem[@]}"
)

files=("$@")
if [ "${#files[@]}" -eq 0 ]; then files=("$bridge"/*.mm); fi

say "syntax/type check against hand-written stubs (NOT a macOS build): $target, node headers $node_inc"
status=0
for f in "${files[@]}"; do
  if out="$("$clang_bin" "${flags[@]}" "$f" 2>&1)"; then
    say "ok   $f"
  else
    say "FAIL $f"
    printf '%s\n' "$out" >&2
    status=1
  fi
done
exit "$status"
