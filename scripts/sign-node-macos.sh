#!/bin/sh
# macOS only: Virtualization.framework requires the com.apple.security.virtualization
# entitlement on the executable that creates a VM. This copies the current node binary into
# the cowork-vm state dir and signs the copy ad hoc with that entitlement; the VZ driver runs
# its VM child process with it. (Never run in CI: no Mac exists where this is developed.)
set -eu
[ "$(uname -s)" = Darwin ] || { echo "sign-node-macos: macOS only" >&2; exit 1; }
here=$(cd "$(dirname "$0")/.." && pwd)
state=${COWORK_VM_STATE_DIR:-$HOME/Library/Application Support/cowork-vm}
mkdir -p "$state/vz"
cp "$(command -v node)" "$state/vz/node"
codesign --force --sign - --entitlements "$here/native/vz-bridge/vz.entitlements" "$state/vz/node"
echo "signed: $state/vz/node"
