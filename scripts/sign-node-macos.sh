#!/usr/bin/env bash
# macOS only: Virtualization.framework requires the com.apple.security.virtualization
# entitlement on the executable that creates a VM. This copies the node binary that runs
# cowork-vm into the cowork-vm state dir and signs the copy ad hoc with that entitlement; the VZ
# driver starts its VM child process (src/host/vm/vz/runner.ts) with it.
# Never run where this project is developed (no Mac there); scripts/macos-acceptance.sh runs it.
#
# Environment (the same names and order as src/host/paths.ts and src/host/vm/vz/host-facts.ts):
#   COWORK_VM_VZ_NODE      where the signed copy goes (default: <state dir>/vz/node)
#   COWORK_VM_STATE_DIR    the state dir, else $XDG_STATE_HOME/cowork-vm,
#                          else ~/Library/Application Support/cowork-vm
#   COWORK_VM_NODE_SOURCE  the node to copy (default: the real binary behind `node`)
set -euo pipefail

die() {
  echo "sign-node-macos: $*" >&2
  exit 1
}

[ "$(uname -s)" = Darwin ] || die "macOS only (Virtualization.framework); on Linux cowork-vm uses QEMU and needs no signing"
here=$(cd "$(dirname "$0")/.." && pwd)
entitlements="$here/native/vz-bridge/vz.entitlements"
[ -f "$entitlements" ] || die "missing $entitlements"
command -v codesign >/dev/null || die "codesign not found — install the Xcode command line tools: xcode-select --install"

# process.execPath, not `command -v node`: version managers (nvm, asdf, volta, fnm) put a shim
# first on PATH; signing the shim would leave the real node unentitled.
src_node=${COWORK_VM_NODE_SOURCE:-$(node -p process.execPath)}
[ -x "$src_node" ] || die "no node binary at $src_node"

# An x64 node on Apple silicon runs under Rosetta, where VZ cannot run arm64 guests.
if [ "$(sysctl -n hw.optional.arm64 2>/dev/null || echo 0)" = 1 ]; then
  node_arch=$("$src_node" -p process.arch)
  [ "$node_arch" = arm64 ] || die "$src_node is an $node_arch build (it would run under Rosetta) — install an arm64 node and run this again with it"
fi

# The state dir exactly as src/host/paths.ts computes it on macOS (an empty variable counts as unset).
if [ -n "${COWORK_VM_STATE_DIR:-}" ]; then
  state=$COWORK_VM_STATE_DIR
else
  state="${XDG_STATE_HOME:-${HOME}/Library/Application Support}/cowork-vm"
fi
target=${COWORK_VM_VZ_NODE:-$state/vz/node}

mkdir -p "$(dirname "$target")"
# Remove first: copying over a signed binary keeps its inode, and macOS caches a code signature
# per file — the re-signed copy would then be killed at launch ("Killed: 9").
rm -f "$target"
cp "$src_node" "$target"
codesign --force --sign - --entitlements "$entitlements" "$target"

codesign --verify --strict "$target" || die "codesign --verify failed for $target"
granted=$(codesign -d --entitlements - --xml "$target" 2>/dev/null | tr -d '[:space:]')
case "$granted" in
  *'<key>com.apple.security.virtualization</key><true/>'*) ;;
  *) die "$target is signed but its entitlements lack com.apple.security.virtualization (got: ${granted:-nothing})" ;;
esac
"$target" -e 'process.exit(0)' || die "the signed copy $target does not run"
echo "signed: $target (from $src_node, entitlement com.apple.security.virtualization verified)"
