#!/bin/sh
# Installs and checks what cowork-vm needs on a Debian/Ubuntu host, from ONE list:
# scripts/host-requirements.tsv (package → what it provides → who needs it). Idempotent and
# quick when everything is present (one dpkg-query; apt-get only runs when something is missing).
#   scripts/setup-host.sh [--for ROLES]            install what is missing (root), then check
#   scripts/setup-host.sh --check [--for ROLES]    only check; exit 1 with the install line if not
# ROLES: comma list of runtime, image, tests, bench, or all (default: runtime,image — what
# `cowork-vm start` and `image build` need; the test suite uses --for all).
# As a non-root user a missing package is reported with the exact `sudo` line (exit 1).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
# COWORK_VM_HOST_REQUIREMENTS: another list (the tests use it to check the failure path).
list="${COWORK_VM_HOST_REQUIREMENTS:-$here/host-requirements.tsv}"
check_only=0
roles="runtime,image"
while [ $# -gt 0 ]; do
  case "$1" in
    --check) check_only=1 ;;
    --for) roles="${2:?--for needs a value}"; shift ;;
    --for=*) roles="${1#--for=}" ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "setup-host: unknown argument $1 (see --help)" >&2; exit 64 ;;
  esac
  shift
done
[ "$roles" = all ] && roles="runtime,image,tests,bench"

if command -v dpkg >/dev/null 2>&1; then
  arch=$(dpkg --print-architecture)
else
  case "$(uname -m)" in
    x86_64) arch=amd64 ;;
    aarch64|arm64) arch=arm64 ;;
    *) arch=$(uname -m) ;;
  esac
fi
case "$arch" in
  amd64|arm64) ;;
  *) echo "setup-host: unsupported machine $arch (need amd64 or arm64)" >&2; exit 1 ;;
esac

tab=$(printf '\t')
# The lines of the list that apply here: "package<TAB>provides" for this arch and these roles.
wanted_lines() {
  while IFS="$tab" read -r pkg parch needed provides _why; do
    case "$pkg" in ''|'#'*) continue ;; esac
    [ "$parch" = any ] || [ "$parch" = "$arch" ] || continue
    hit=0
    for r in $(echo "$roles" | tr ',' ' '); do
      case ",$needed," in *",$r,"*) hit=1 ;; esac
    done
    [ "$hit" = 1 ] && printf '%s\t%s\n' "$pkg" "$provides"
  done <"$list"
  return 0
}

lines=$(wanted_lines)
packages=$(printf '%s\n' "$lines" | cut -f1 | tr '\n' ' ')
if [ -z "${packages% }" ]; then
  echo "setup-host: nothing in $list is needed for '$roles' (roles: runtime, image, tests, bench, all)" >&2
  exit 64
fi

# Packages dpkg does not show as installed.
missing_packages() {
  installed=$(dpkg-query -W -f '${Package} ${db:Status-Abbrev}\n' $packages 2>/dev/null | awk '$2 ~ /^ii/ {print $1}' || true)
  for p in $packages; do
    printf '%s\n' "$installed" | grep -qx "$p" || printf '%s ' "$p"
  done
}

# Files and commands the list promises but this host lacks ("package: item" per line).
missing_provides() {
  printf '%s\n' "$lines" | while IFS="$tab" read -r pkg provides; do
    for item in $provides; do
      found=0
      for alt in $(echo "$item" | tr '|' ' '); do
        case "$alt" in
          /*) [ -e "$alt" ] && found=1 ;;
          *) PATH="$PATH:/usr/sbin:/sbin" command -v "$alt" >/dev/null 2>&1 && found=1 ;;
        esac
      done
      [ "$found" = 1 ] || echo "$pkg: $item"
    done
  done
}

if ! command -v dpkg-query >/dev/null 2>&1; then
  gaps=$(missing_provides)
  if [ -n "$gaps" ]; then
    echo "setup-host: no dpkg/apt here; install by hand what provides (Debian package names):" >&2
    printf '  %s\n' "$gaps" >&2
    exit 1
  fi
  echo "setup-host: everything for $roles present (no dpkg: checked files and commands only)"
  exit 0
fi

missing=$(missing_packages)
missing="${missing% }"
install="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing"
if [ -n "$missing" ]; then
  if [ "$check_only" = 1 ]; then
    echo "setup-host: MISSING host packages for $roles: $missing" >&2
    echo "  install with: sudo sh -c '$install'" >&2
    echo "  (or: sudo bash scripts/setup-host.sh --for $roles)" >&2
    exit 1
  fi
  if [ "$(id -u)" != 0 ]; then
    echo "setup-host: missing host packages for $roles: $missing" >&2
    echo "Run this as root (or with sudo), then run scripts/setup-host.sh again:" >&2
    echo "  sudo sh -c '$install'" >&2
    exit 1
  fi
  echo "setup-host: installing $missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  # shellcheck disable=SC2086
  apt-get install -y --no-install-recommends $missing
  still=$(missing_packages)
  if [ -n "$still" ]; then
    echo "setup-host: apt-get did not install: $still" >&2
    exit 1
  fi
fi

gaps=$(missing_provides)
if [ -n "$gaps" ]; then
  echo "setup-host: packages are installed but these files/commands are missing:" >&2
  printf '  %s\n' "$gaps" >&2
  echo "  reinstall with: sudo apt-get install --reinstall $(printf '%s\n' "$gaps" | cut -d: -f1 | sort -u | tr '\n' ' ')" >&2
  exit 1
fi

# Building the other architecture's image (arm64 on an x86_64 host, for Virtualization.framework
# on Apple silicon) runs its maintainer scripts through qemu-user: binfmt_misc must know the
# emulator. Quick when it does; registered (F flag: the interpreter is opened now, so it works
# inside mmdebstrap's chroot) when root; otherwise the exact fix.
case ",$roles," in *,image,*|*,tests,*) foreign=1 ;; *) foreign=0 ;; esac
if [ "$foreign" = 1 ]; then
  bm=/proc/sys/fs/binfmt_misc
  if [ "$arch" = amd64 ]; then
    target=aarch64
    magic='\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
    mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
  else
    target=x86_64
    magic='\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00'
    mask='\xff\xff\xff\xff\xff\xfe\xfe\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
  fi
  entry="$bm/qemu-$target"
  enabled() { [ -r "$entry" ] && [ "$(head -n1 "$entry")" = enabled ]; }
  if ! enabled; then
    if [ "$check_only" = 1 ] || [ "$(id -u)" != 0 ]; then
      echo "setup-host: qemu-$target is not registered with binfmt_misc ($entry): building the" >&2
      echo "  other architecture's guest image needs it. Run as root: sudo sh scripts/setup-host.sh --for $roles" >&2
      exit 1
    fi
    [ -e "$bm/register" ] || mount -t binfmt_misc binfmt_misc "$bm" 2>/dev/null || true
    if [ -e "$entry" ]; then
      echo 1 >"$entry" 2>/dev/null || true
    elif command -v update-binfmts >/dev/null 2>&1; then
      update-binfmts --enable "qemu-$target" >/dev/null 2>&1 || true
    fi
    interp=$(command -v "qemu-$target-static" || true)
    if ! enabled && [ -e "$bm/register" ] && [ -n "$interp" ]; then
      printf ':qemu-%s:M::%b:%b:%s:F\n' "$target" "$magic" "$mask" "$interp" >"$bm/register" 2>/dev/null || true
    fi
    if ! enabled; then
      echo "setup-host: could not register qemu-$target with binfmt_misc at $bm (not mounted, or this" >&2
      echo "  container may not change it). On the host: sudo mount -t binfmt_misc binfmt_misc $bm &&" >&2
      echo "  sudo update-binfmts --enable qemu-$target" >&2
      exit 1
    fi
    echo "setup-host: registered qemu-$target with binfmt_misc (for the other architecture's guest image)"
  fi
fi
echo "setup-host: all host packages for $roles present ($(echo $packages | wc -w) packages)"
