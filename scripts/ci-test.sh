#!/usr/bin/env bash
# The one test command (README, `npm run test:ci`, .ci/run): installs what the host needs,
# builds the guest images (cached by recipe hash: quick when already built), then runs every
# test under a private D-Bus session with an unlocked gnome-keyring (the real Secret Service the
# keychain tests use), and ends with one line: "N passed, N failed[, N skipped]".
set -euo pipefail
cd "$(dirname "$0")/.."

# First: every host package the runtime, the image build, the tests and the bench need, from the
# one list (scripts/host-requirements.tsv); then check it, so a gap fails here with the install
# line instead of as a puzzling test failure later.
sh scripts/setup-host.sh --for all
sh scripts/setup-host.sh --check --for all
[ -d node_modules/ssh2 ] || npm install --no-audit --no-fund
npm run build
npm run check:native   # Objective-C++ VZ bridge vs stub headers: a syntax/type check, not a macOS build
node bin/cowork-vm.js image build base
node bin/cowork-vm.js image build browser
# The other architecture's base image (arm64 on x86_64, through qemu-user and binfmt_misc): the
# vz-profile test boots it the way a Mac of that arch would run it.
case "$(uname -m)" in aarch64|arm64) other=amd64 ;; *) other=arm64 ;; esac
node bin/cowork-vm.js image build base --arch "$other"

# One `vitest run` runs the three projects of vitest.config.ts one group after another (unit in
# parallel, then integration and e2e a file at a time), so no guest boots while the unit files
# use both cores, and the single JSON report below holds every project's results.
rm -f .vitest-results.json
set +e
dbus-run-session -- bash -c '
  # gnome-keyring-daemon prints env assignments; the daemon itself stays in the background.
  eval "$(printf "cowork-ci" | gnome-keyring-daemon --unlock --components=secrets)"
  export GNOME_KEYRING_CONTROL
  npx vitest run "$@"
' vitest "$@"
status=$?
set -e
node scripts/test-summary.js .vitest-results.json || status=1
exit $status
