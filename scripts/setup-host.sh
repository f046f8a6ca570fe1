#!/bin/sh
# Installs what cowork-vm needs on a Debian/Ubuntu host. Idempotent and fast when everything
# is present (checks with dpkg-query first; only then apt-get update + install).
# As a non-root user it prints the exact command to run and exits 1 if something is missing.
#   scripts/setup-host.sh            install what is missing (root) / report it (non-root)
#   scripts/setup-host.sh --check    only report; exit 1 if something is missing
set -eu

check_only=0
[ "${1:-}" = "--check" ] && check_only=1

case "$(uname -m)" in
  x86_64) qemu=qemu-system-x86 ;;
  aarch64|arm64) qemu=qemu-system-arm ;;
  *) echo "setup-host: unsupported machine $(uname -m) (need x86_64 or aarch64)" >&2; exit 1 ;;
esac

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "setup-host: this script supports Debian and Ubuntu (dpkg/apt). Install by hand:" >&2
  echo "  qemu (system emulator + qemu-img), mmdebstrap, e2fsprogs, cpio, gzip, zstd, openssh-client," >&2
  echo "  uidmap, dbus, gnome-keyring, libsecret-tools" >&2
  exit 1
fi

# No browser on the host: Chromium runs inside the guest (image variant "browser"), and the host
# only drives it over CDP with playwright-core.
# qemu-system-common (pulled in by qemu-system-*) carries virtiofsd on Debian 12.
# openssh-server: the GuestSession tests run against a real sshd on the host too.
wanted="$qemu qemu-utils mmdebstrap e2fsprogs cpio gzip zstd xz-utils openssh-client openssh-server uidmap dbus gnome-keyring libsecret-tools"

missing=""
for p in $wanted; do
  status=$(dpkg-query -W -f '${db:Status-Abbrev}' "$p" 2>/dev/null || true)
  case "$status" in
    ii*) ;;
    *) missing="$missing $p" ;;
  esac
done
missing="${missing# }"

if [ -z "$missing" ]; then
  echo "setup-host: all host packages present"
  exit 0
fi

cmd="apt-get update && apt-get install -y --no-install-recommends $missing"
if [ "$check_only" = 1 ]; then
  echo "setup-host: missing: $missing" >&2
  echo "  install with: sudo sh -c '$cmd'" >&2
  exit 1
fi
if [ "$(id -u)" != 0 ]; then
  echo "setup-host: missing packages: $missing" >&2
  echo "Run this as root (or with sudo), then run scripts/setup-host.sh again:" >&2
  echo "  sudo sh -c '$cmd'" >&2
  exit 1
fi

echo "setup-host: installing $missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update
# shellcheck disable=SC2086
apt-get install -y --no-install-recommends $missing
echo "setup-host: done"
