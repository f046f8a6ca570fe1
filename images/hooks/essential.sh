#!/bin/sh
# mmdebstrap --essential-hook: runs after the Essential packages are unpacked, before the
# rest (the kernel among them) is installed. We boot with our own busybox initramfs, so the
# Debian initramfs that the kernel's postinst would build (slow: it packs every module) is
# wasted work: divert update-initramfs to a no-op before initramfs-tools arrives.
set -eu
root="$1"
for p in /usr/sbin/update-initramfs /sbin/update-initramfs; do
  chroot "$root" dpkg-divert --quiet --local --rename --divert "$p.cowork-real" --add "$p"
done
mkdir -p "$root/usr/sbin"
printf '#!/bin/sh\n# cowork-vm: the guest boots its own initramfs; nothing to do.\nexit 0\n' >"$root/usr/sbin/update-initramfs"
chmod 0755 "$root/usr/sbin/update-initramfs"
