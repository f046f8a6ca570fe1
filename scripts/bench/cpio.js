/**
 * A minimal writer for the Linux initramfs format (cpio "newc"), enough for the bare-boot
 * baseline: directories, regular files and device nodes, with no need for root or mknod.
 */

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFCHR = 0o020000;

function hex8(n) {
  return n.toString(16).padStart(8, '0');
}

function pad4(len) {
  return Buffer.alloc((4 - (len % 4)) % 4);
}

function entry(ino, name, mode, data = Buffer.alloc(0), rdev = [0, 0]) {
  const nameBuf = Buffer.from(`${name}\0`);
  const fields = [ino, mode, 0, 0, 1, 0, data.length, 0, 0, rdev[0], rdev[1], nameBuf.length, 0];
  const header = Buffer.from(`070701${fields.map(hex8).join('')}`, 'ascii');
  return [header, nameBuf, pad4(header.length + nameBuf.length), data, pad4(data.length)];
}

/**
 * items: { dir } | { file, data, mode } | { chr, major, minor, mode }.
 * Returns the archive as one Buffer (uncompressed; the kernel accepts that as an initrd).
 */
export function newcArchive(items) {
  const parts = [];
  let ino = 1;
  for (const it of items) {
    if (it.dir) parts.push(...entry(ino++, it.dir, S_IFDIR | 0o755));
    else if (it.file) parts.push(...entry(ino++, it.file, S_IFREG | (it.mode ?? 0o644), it.data));
    else if (it.chr)
      parts.push(...entry(ino++, it.chr, S_IFCHR | (it.mode ?? 0o600), undefined, [it.major, it.minor]));
  }
  parts.push(...entry(ino, 'TRAILER!!!', 0));
  return Buffer.concat(parts);
}
