#!/usr/bin/env bash
# The first run of cowork-vm's Mac half, for the first person with a Mac. The VZ driver, runner
# and addon have never run on a Mac (they are compiled against stub headers and exercised on
# Linux against a fake bridge); this script runs every step for real, keeps going after a
# failure where the next step still tells something, and writes ONE report to paste into an
# issue of the cowork-vm repository (title: "macOS acceptance: <your Mac>").
#
#   bash scripts/macos-acceptance.sh [IMAGE_ARCHIVE]
#
# IMAGE_ARCHIVE: an image exported on Linux (`cowork-vm image export base --arch arm64`); without
# it the image is built here (needs a container runtime, or it says how to import one).
set -uo pipefail

if [ "$(uname -s)" != Darwin ]; then
  echo "macos-acceptance: this script checks cowork-vm on macOS and cannot run on $(uname -s)." >&2
  echo "On Linux the VZ driver is tested against a fake bridge: npx vitest run tests/integration/vz-fake-bridge.test.ts" >&2
  exit 2
fi

cd "$(dirname "$0")/.." || exit 2
root=$(pwd)
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out="$root/test-artifacts/macos-acceptance-$stamp"
mkdir -p "$out"
report="$out/report.md"
archive=${1:-}
cli=(node "$root/bin/cowork-vm.js")
case "$(uname -m)" in arm64) arch=arm64 ;; *) arch=amd64 ;; esac
failed=0
started_at=$(date +%s)

say() { printf '%s\n' "$*" | tee -a "$report"; }

# step NAME COMMAND… — runs it with its output in $out/NN-name.log, records PASS/FAIL and seconds.
n=0
step() {
  local name=$1
  shift
  n=$((n + 1))
  local log
  log="$out/$(printf '%02d' "$n")-${name// /-}.log"
  local t0=$SECONDS
  printf '\n== %s: %s\n' "$n" "$name"
  if "$@" >"$log" 2>&1; then
    say "- [x] $name ($((SECONDS - t0)) s)"
    tail -n 5 "$log"
    return 0
  fi
  failed=$((failed + 1))
  say "- [ ] **FAILED** $name ($((SECONDS - t0)) s) — log: ${log#"$root"/}"
  { echo '  ```'; tail -n 25 "$log" | sed 's/^/  /'; echo '  ```'; } | tee -a "$report"
  return 1
}

prerequisites() {
  sw_vers
  echo "machine: $(uname -m)  darwin: $(uname -r)"
  echo "node: $(node -p 'process.version + " " + process.arch') at $(node -p process.execPath)"
  echo "rosetta (proc_translated): $(sysctl -n sysctl.proc_translated 2>/dev/null || echo 0)"
  echo "hypervisor (kern.hv_support): $(sysctl -n kern.hv_support)"
  xcode-select -p
  command -v codesign clang
  [ "$(sysctl -n kern.hv_support)" = 1 ] || { echo "this Mac has no hypervisor support"; return 1; }
  [ "$(node -p 'Number(process.versions.node.split(".")[0]) >= 20')" = true ] || { echo "node >= 20 needed"; return 1; }
  [ "$(node -p process.arch)" = "$(uname -m | sed 's/x86_64/x64/')" ] || { echo "node's arch differs from the Mac's (Rosetta?)"; return 1; }
}

install_and_build() {
  [ -d node_modules/ssh2 ] || npm install --no-audit --no-fund || return 1
  npm run build
}

verify_signature() {
  local node
  node=$(node -e 'import("./dist/host/vm/vz/host-facts.js").then((m) => console.log(m.signedNodePath()))')
  codesign --verify --strict --verbose=2 "$node" && codesign -d --entitlements - --xml "$node" |
    tr -d '[:space:]' | grep -q '<key>com.apple.security.virtualization</key><true/>'
}

image() {
  if [ -n "$archive" ]; then
    "${cli[@]}" image import "$archive"
  else
    "${cli[@]}" image build base --arch "$arch"
  fi
}

contract_test() {
  # Only the VZ block: the QEMU block of the same file needs qemu-system, not this script's subject.
  npx vitest run tests/integration/driver-contract.test.ts -t 'VmDriver contract: vz'
}

# start → exec over vsock SSH → graceful stop, through the CLI a user runs, timing the stop.
smoke() {
  local ws
  ws=$(mktemp -d)
  "${cli[@]}" start --detach --workspace "$ws" || return 1
  "${cli[@]}" exec --workspace "$ws" -- 'uname -a && echo hello > /workspace/hello.txt' || {
    "${cli[@]}" stop --workspace "$ws"
    return 1
  }
  local t0=$SECONDS
  "${cli[@]}" stop --workspace "$ws" --timeout 60 || return 1
  echo "graceful stop took $((SECONDS - t0)) s"
  grep -q hello "$ws/hello.txt" || { echo "the guest's write did not reach the workspace share"; return 1; }
  # The sandbox's console log: <state dir>/sandboxes/<workspace id>/run/console.log (src/host/paths.ts).
  node -e 'import("./dist/host/paths.js").then((m) => console.log(m.sandboxStateDir(m.hostPaths(), require("fs").realpathSync(process.argv[1]))))' "$ws" |
    while read -r dir; do cp "$dir/run/console.log" "$out/console.log"; done
  return 0
}

virtualization_log() {
  log show --last "$(($(date +%s) - started_at + 60))s" --style compact \
    --predicate 'subsystem == "com.apple.Virtualization"' >"$out/virtualization.log"
  tail -n 40 "$out/virtualization.log"
}

{
  echo "# cowork-vm macOS acceptance — $stamp"
  echo
  echo "Mac: $(sysctl -n hw.model 2>/dev/null) $(uname -m), macOS $(sw_vers -productVersion), node $(node -v 2>/dev/null)"
  echo "Commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo
} >"$report"

step "prerequisites" prerequisites || say "  (fix the prerequisites above first; later steps will likely fail)"
step "npm install and build" install_and_build
step "build the vz-bridge addon (npx node-gyp rebuild)" npx node-gyp rebuild
step "sign node (bash scripts/sign-node-macos.sh)" bash scripts/sign-node-macos.sh
step "verify the signature and the virtualization entitlement" verify_signature
step "cowork-vm doctor" "${cli[@]}" doctor
step "guest image ($arch, ${archive:-build})" image
step "driver contract on VZ (boot, READY, SSH over vsock, stop, crash)" contract_test
step "CLI smoke: start, exec, graceful stop" smoke
step "collect com.apple.Virtualization log" virtualization_log

say ""
if [ "$failed" = 0 ]; then say "Result: every step passed."; else say "Result: $failed step(s) failed."; fi
echo
echo "Report: $report (logs, console.log and virtualization.log beside it)."
echo "Please open an issue in the cowork-vm repository titled \"macOS acceptance: $(sysctl -n hw.model 2>/dev/null)\","
echo "paste the report, and attach the folder ${out#"$root"/} (zip it) — success reports are wanted too."
[ "$failed" = 0 ]
