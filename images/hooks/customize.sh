#!/bin/sh
# mmdebstrap --customize-hook: runs after all packages are installed, with $1 = the new root.
# Works the same in root and unshare mode (it only touches paths under $1 and reads ours).
#   $1  root directory being built
#   $2  our guest files (src/guest)
#   $3  the initramfs module list (images/initramfs-modules.list)
#   $4  select-modules.awk
# Leaves in $1/cowork-boot: vmlinuz, busybox, modules/*.ko, modules.list, kernel-version;
# the build script copies that out (sync-out) and then deletes it from the root.
set -eu
root="$1" guest="$2" modlist="$3" awkprog="$4"

# Our init, sshd config and the power-button action.
install -D -m 0755 "$guest/cowork-init" "$root/sbin/cowork-init"
install -D -m 0644 "$guest/sshd_config" "$root/etc/cowork/sshd_config"
install -D -m 0644 "$guest/node-proxy.cjs" "$root/etc/cowork/node-proxy.cjs"
install -D -m 0755 "$guest/acpi-power" "$root/etc/acpi/PWRF/00000080"
mkdir -p "$root/etc/cowork/authorized_keys" "$root/workspace" "$root/home"
chmod 0755 "$root/etc/cowork/authorized_keys" "$root/workspace"

# No way up for the agent: no setuid/setgid programs (su, passwd, chfn, mount, …) and a locked
# root account. The guest has no sudo either (not in any package list).
find "$root" -xdev -type f -perm /6000 -exec chmod ug-s {} +
sed -i 's/^root:[^:]*:/root:*:/' "$root/etc/shadow"

# Host keys come from the seed share at every boot; never bake keys into the image.
rm -f "$root"/etc/ssh/ssh_host_*
# Nothing in the image may start services on its own (we have no systemd) or let a user in.
rm -f "$root/etc/machine-id" && : >"$root/etc/machine-id"
echo cowork >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tcowork\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
# No resolver: the guest has no DNS; HTTP(S) goes through the host's proxy by name.
: >"$root/etc/resolv.conf"

# Kernel, busybox and the initramfs modules out; then the (large) kernel parts out of the root.
kver=$(ls "$root/lib/modules" | head -n1)
[ -n "$kver" ] || { echo "customize: no kernel installed in the root" >&2; exit 1; }
boot="$root/cowork-boot"
rm -rf "$boot" && mkdir -p "$boot/modules"
cp "$root/boot/vmlinuz-$kver" "$boot/vmlinuz"
cp "$root/bin/busybox" "$boot/busybox"
echo "$kver" >"$boot/kernel-version"
moddir="$root/lib/modules/$kver"
want=$(grep -v '^[[:space:]]*#' "$modlist" | tr '\n' ' ')
# A module this kernel lacks (another arch's kernel may build it in or not have it) is reported
# and skipped; if it mattered, the guest says so at boot (COWORK-FATAL … cannot mount …).
awk -v want="$want" -v builtin="$moddir/modules.builtin" -f "$awkprog" "$moddir/modules.dep" >"$boot/paths" ||
  echo "customize: continuing without the modules reported above" >&2
: >"$boot/modules.list"
while read -r rel; do
  base=${rel##*/}
  case "$base" in
    *.ko.xz) name=${base%.xz}; xz -dc "$moddir/$rel" >"$boot/modules/$name" ;;
    *.ko.zst) name=${base%.zst}; zstd -qdc "$moddir/$rel" >"$boot/modules/$name" ;;
    *.ko.gz) name=${base%.gz}; gzip -dc "$moddir/$rel" >"$boot/modules/$name" ;;
    *) name=$base; cp "$moddir/$rel" "$boot/modules/$name" ;;
  esac
  echo "${name%.ko}" >>"$boot/modules.list"
done <"$boot/paths"
rm -f "$boot/paths"
dpkg-query --admindir="$root/var/lib/dpkg" -W -f '${Package}\t${Version}\n' >"$boot/packages.tsv"
rm -rf "$root"/boot/* "$root/lib/modules/$kver"
rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/log/*.log "$root"/var/log/apt/*
