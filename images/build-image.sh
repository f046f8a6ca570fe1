#!/bin/bash
# Builds one guest image variant from Debian packages. Called by the image store
# (src/host/vm/images.ts), which writes manifest.json; usable by hand too:
#   images/build-image.sh --name base --arch amd64 --out DIR [--work DIR]
# Produces in DIR: rootfs.ext4, vmlinuz, initrd.img, modules.list, packages.tsv, and on amd64
# vmlinux (the same kernel uncompressed, for QEMU's PVH boot).
# Progress on stdout: "STAGE <name> <what>" when a stage starts and
# "STAGE-DONE <name> <seconds>" when it ends; everything else is log output.
# Environment: COWORK_VM_MIRROR (Debian mirror URL), COWORK_VM_SUITE (default bookworm).
set -euo pipefail
# mke2fs, resize2fs and e2fsck live in /usr/sbin, which ordinary users often lack in PATH.
export PATH="$PATH:/usr/sbin:/sbin"

here=$(cd "$(dirname "$0")" && pwd)
guest="$here/../src/guest"
name="" arch="" out="" work=""
while [ $# -gt 0 ]; do
  case "$1" in
    --name) name="$2"; shift 2 ;;
    --arch) arch="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    *) echo "build-image: unknown argument $1" >&2; exit 64 ;;
  esac
done
[ -n "$name" ] && [ -n "$out" ] || { echo "usage: build-image.sh --name NAME --arch amd64|arm64 --out DIR" >&2; exit 64; }
case "$arch" in amd64|arm64) ;; *) echo "build-image: arch must be amd64 or arm64, not '$arch'" >&2; exit 64 ;; esac
suite="${COWORK_VM_SUITE:-bookworm}"
mirror="${COWORK_VM_MIRROR:-http://deb.debian.org/debian}"
security="${COWORK_VM_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"

for tool in mmdebstrap mke2fs resize2fs cpio gzip tar awk; do
  command -v "$tool" >/dev/null || { echo "build-image: $tool is missing — run scripts/setup-host.sh" >&2; exit 69; }
done

# Package list: one per line, '#' comments, '@include other', @ARCH@ = Debian architecture.
packages() {
  local f="$here/packages/$1.list"
  [ -f "$f" ] || { echo "build-image: no package list $f" >&2; exit 66; }
  while read -r line; do
    line="${line%%#*}"; line="${line//[[:space:]]/}"
    [ -z "$line" ] && continue
    case "$line" in
      @include*) packages "${line#@include}" ;;
      *) echo "${line//@ARCH@/$arch}" ;;
    esac
  done <"$f"
}
include=$(packages "$name" | sort -u | paste -sd, -)

# Root-only steps (unpacking a tree with other owners, mke2fs of it) run directly as root, or
# in a user namespace with subordinate ids as an ordinary user (mmdebstrap's unshare mode needs
# the same). Checked up front so a non-root build fails in a second with what to do.
if [ "$(id -u)" != 0 ] && ! unshare --map-root-user --map-auto true 2>/dev/null; then
  me=$(id -un 2>/dev/null || id -u)
  echo "build-image: building the image as a non-root user needs mmdebstrap's unshare mode: user" >&2
  echo "  namespaces with subordinate ids (util-linux >= 2.38 'unshare --map-auto', uidmap, and" >&2
  echo "  entries for $me in /etc/subuid and /etc/subgid). This host does not offer that. Either:" >&2
  echo "    sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 $me" >&2
  echo "  or run the image build as root (sudo). Running the VM afterwards does not need root." >&2
  exit 77
fi
as_root() {
  if [ "$(id -u)" = 0 ]; then sh -c "$1"; else unshare --map-root-user --map-auto -- sh -c "$1"; fi
}

# Virtualization.framework boots an arm64 kernel only as a raw Image ("ARM\x64" at offset 56);
# Debian ships vmlinuz compressed (gzip, or an EFI zboot wrapper around a compressed Image).
# QEMU takes either, so the image always carries the raw one. amd64's bzImage is copied as is.
raw_kernel() {
  local src="$1" dst="$2" magic
  if [ "$arch" != arm64 ]; then cp "$src" "$dst"; return; fi
  magic=$(od -An -tx1 -N2 "$src" | tr -d ' \n')
  if [ "$magic" = 1f8b ]; then
    gzip -dc "$src" >"$dst"
  elif [ "$(dd if="$src" bs=1 skip=4 count=4 2>/dev/null | tr -d '\0')" = zimg ]; then
    # EFI zboot header: payload offset (u32 at 8), size (u32 at 12), compression name at 24.
    local off size comp
    off=$(od -An -tu4 -j8 -N4 "$src" | tr -d ' ')
    size=$(od -An -tu4 -j12 -N4 "$src" | tr -d ' ')
    comp=$(dd if="$src" bs=1 skip=24 count=8 2>/dev/null | tr -d '\0')
    case "$comp" in
      gzip) tail -c +"$((off + 1))" "$src" | head -c "$size" | gzip -dc >"$dst" ;;
      zstd) tail -c +"$((off + 1))" "$src" | head -c "$size" | zstd -qdc >"$dst" ;;
      xz|lzma) tail -c +"$((off + 1))" "$src" | head -c "$size" | xz -dc >"$dst" ;;
      *) echo "build-image: EFI zboot kernel compressed with '$comp': cannot unpack it" >&2; exit 65 ;;
    esac
  else
    cp "$src" "$dst"
  fi
  [ "$(dd if="$dst" bs=1 skip=56 count=4 2>/dev/null | tr -d '\0')" = "$(printf 'ARM\x64')" ] ||
    { echo "build-image: the arm64 kernel is not a raw Image after unpacking" >&2; exit 65; }
}

# QEMU boots an x86 ELF kernel that has a PVH entry note directly (Debian's has one: CONFIG_PVH).
# A bzImage instead runs its own decompressor first, in the guest: under emulation (TCG) that
# alone takes ~2.6 s of every boot. So amd64 images also carry the kernel uncompressed
# (vmlinux, ~65 MiB); VZ and QEMU's "vz" profile still boot the bzImage.
pvh_kernel() {
  local src="$1" dst="$2" off comp shoff shnum shentsize
  for comp in 'xz:\xfd7zXZ\x00' 'zstd:\x28\xb5\x2f\xfd' 'gzip:\x1f\x8b\x08\x00'; do
    # -m1: grep stops after the first "line" holding the magic (no SIGPIPE under pipefail).
    off=$(LC_ALL=C grep -obUaP -m1 "${comp#*:}" "$src" | cut -d: -f1) || true
    off=${off%%[!0-9]*}
    [ -n "$off" ] || continue
    # The payload is followed by the rest of the bzImage: the decompressor's complaint about
    # trailing bytes is expected; what it wrote is checked below.
    case "${comp%%:*}" in
      xz) tail -c +"$((off + 1))" "$src" | xz -dcq >"$dst" 2>/dev/null || true ;;
      zstd) tail -c +"$((off + 1))" "$src" | zstd -qdc >"$dst" 2>/dev/null || true ;;
      gzip) tail -c +"$((off + 1))" "$src" | gzip -dcq >"$dst" 2>/dev/null || true ;;
    esac
    # A whole ELF64: its magic, and its section headers (e_shoff, e_shnum × e_shentsize) inside the file.
    if [ "$(od -An -tx1 -N4 "$dst" | tr -d ' \n')" = 7f454c46 ]; then
      shoff=$(od -An -tu8 -j40 -N8 "$dst" | tr -d ' ')
      shentsize=$(od -An -tu2 -j58 -N2 "$dst" | tr -d ' ')
      shnum=$(od -An -tu2 -j60 -N2 "$dst" | tr -d ' ')
      [ "$((shoff + shnum * shentsize))" -le "$(stat -c %s "$dst")" ] && return 0
    fi
  done
  rm -f "$dst"
  echo "build-image: cannot unpack the amd64 kernel to a whole ELF vmlinux" >&2
  exit 65
}

t_stage=0
stage() { t_stage=$(date +%s.%N); echo "STAGE $1 $2"; }
done_stage() { echo "STAGE-DONE $1 $(awk -v a="$t_stage" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')"; }

mkdir -p "$out"
out=$(cd "$out" && pwd)
[ -n "$work" ] || work="$out/.work"
rm -rf "$work" && mkdir -p "$work"
work=$(cd "$work" && pwd)
trap 'as_root "rm -rf \"$work\"" 2>/dev/null || rm -rf "$work"' EXIT

stage bootstrap "mmdebstrap $suite/$arch: $(echo "$include" | tr ',' ' ')"
mkdir -p "$work/boot"
mmdebstrap --mode=auto --variant=apt --arch="$arch" --format=tar \
  --include="$include" \
  --aptopt='APT::Install-Recommends "false"' \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  --dpkgopt='path-exclude=/usr/share/lintian/*' \
  --dpkgopt='path-exclude=/usr/share/bug/*' \
  --essential-hook="sh '$here/hooks/essential.sh' \"\$1\"" \
  --customize-hook="sh '$here/hooks/customize.sh' \"\$1\" '$guest' '$here/initramfs-modules.list' '$here/hooks/select-modules.awk'" \
  --customize-hook="sync-out /cowork-boot '$work/boot'" \
  --customize-hook='rm -rf "$1/cowork-boot"' \
  "$suite" "$work/rootfs.tar" \
  "deb $mirror $suite main" "deb $mirror $suite-updates main" "deb $security $suite-security main"
done_stage bootstrap

stage rootfs "rootfs.ext4 (read-only ext4, shrunk to fit)"
as_root "set -e
  mkdir -p '$work/root'
  tar --numeric-owner -xpf '$work/rootfs.tar' -C '$work/root' --exclude='./dev/*'
  kib=\$(du -sk '$work/root' | cut -f1)
  files=\$(find '$work/root' | wc -l)
  rm -f '$out/rootfs.ext4'
  mke2fs -q -F -t ext4 -O ^has_journal -m 0 -b 4096 -L cowork-root -N \$((files + files / 5 + 1024)) \
    -d '$work/root' '$out/rootfs.ext4' \$((kib + kib / 5 + 65536))k
  rm -rf '$work/root'"
rm -f "$work/rootfs.tar"
e2fsck -fp "$out/rootfs.ext4" >/dev/null
resize2fs -M "$out/rootfs.ext4" >/dev/null 2>&1
done_stage rootfs

stage initramfs "busybox initramfs with $(wc -l <"$work/boot/modules.list") modules"
ird="$work/initramfs"
mkdir -p "$ird/bin" "$ird/dev" "$ird/proc" "$ird/sys" "$ird/mnt" "$ird/lib/modules" "$ird/etc"
cp "$work/boot/busybox" "$ird/bin/busybox"
chmod 0755 "$ird/bin/busybox"
ln -s busybox "$ird/bin/sh"
install -m 0755 "$guest/initramfs-init" "$ird/init"
cp "$work/boot/modules/"*.ko "$ird/lib/modules/"
cp "$work/boot/modules.list" "$ird/etc/modules.list"
(cd "$ird" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 | gzip -9n) >"$out/initrd.img"
done_stage initramfs

stage finish "kernel, module and package lists"
raw_kernel "$work/boot/vmlinuz" "$out/vmlinuz"
[ "$arch" != amd64 ] || pvh_kernel "$out/vmlinuz" "$out/vmlinux"
cp "$work/boot/modules.list" "$out/modules.list"
cp "$work/boot/packages.tsv" "$out/packages.tsv"
cp "$work/boot/kernel-version" "$out/kernel-version"
done_stage finish
