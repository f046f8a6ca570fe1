#!/usr/bin/env bash
# The one test command (README, `npm run test:ci`, .ci/run): installs what the host needs,
# builds the guest images (cached by recipe hash: quick when already built), then runs every
# test under a private D-Bus session with an unlocked gnome-keyring (the real Secret Service the
# keychain tests use), and ends with one line: "N passed, N failed[, N skipped]".
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-host.sh
[ -d node_modules/ssh2 ] || npm install --no-audit --no-fund
npm run build
node bin/cowork-vm.js image build base
node bin/cowork-vm.js image build browser

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
