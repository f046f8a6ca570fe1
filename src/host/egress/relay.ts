import { CoworkError } from '../errors.js';

/**
 * How a QEMU guest reaches the egress proxy. QEMU's `guestfwd=...-tcp:127.0.0.1:PORT` form
 * connects ONE chardev at start-up and pours every guest connection into that single stream
 * (libslirp looks the socket up by guest address and port), so a second connection, a CONNECT
 * tunnel or a `Connection: close` from the proxy breaks egress for good. The `cmd:` form spawns
 * a program per guest connection with the connection on its stdin/stdout (libslirp fork_exec:
 * fds 0, 1 and 2 are one end of a socketpair), which is what a proxy needs.
 *
 * The program is node itself (always present, no extra host dependency): it relays fd 0 to
 * the proxy's loopback port and back, passes half-closes on, and exits when both ends are done.
 * VZ does not need this: its vsock listener opens one host connection per guest connection.
 */
const RELAY_JS = [
  'const n=require("net")',
  'const g=new n.Socket({fd:0,allowHalfOpen:true})',
  'const s=n.connect({host:"127.0.0.1",port:Number(process.argv[1]),allowHalfOpen:true})',
  'const x=()=>{g.destroy();s.destroy()}',
  'g.on("error",x)',
  's.on("error",x)',
  'g.pipe(s).pipe(g)',
].join(';');

/**
 * The command line for `guestfwd=tcp:ADDR:PORT-cmd:<this>` (libslirp splits it like a shell,
 * without running one). Pass it as VmSpec.egress.hostCommand; the QEMU argument builder doubles
 * its commas for the option parser.
 */
export function egressRelayCommand(proxyPort: number, nodePath: string = process.execPath): string {
  if (!Number.isInteger(proxyPort) || proxyPort < 1 || proxyPort > 65535) {
    throw new CoworkError('invalidArgument', `egress proxy port ${proxyPort} is not a TCP port (1-65535)`);
  }
  if (/['\s]/.test(nodePath)) {
    throw new CoworkError(
      'unsupported',
      `the node binary path ${JSON.stringify(nodePath)} contains a space or quote, which QEMU's guestfwd command cannot carry; ` +
        'install node under a plain path',
    );
  }
  // --no-warnings: fd 2 is the guest's connection too, so nothing may be printed there.
  return `${nodePath} --no-warnings -e '${RELAY_JS}' ${proxyPort}`;
}
