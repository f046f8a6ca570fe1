/**
 * The one wording for how a VM process ended, so every driver reports a crash the same way
 * and nothing above the drivers names a hypervisor. `process` is what the user would find in
 * `ps` (e.g. "qemu"); a `helperFailure` (e.g. virtiofsd died and the driver ended the VM)
 * explains the exit better than the signal the driver then sent.
 */
export function describeVmExit(
  process: string,
  code: number | null,
  signal: string | null,
  helperFailure?: string,
): string {
  if (helperFailure) return helperFailure;
  if (signal) return `the VM process (${process}) was killed by ${signal}`;
  if (code === null) return `the VM process (${process}) could not be started`;
  return `the VM process (${process}) exited with code ${code}`;
}
