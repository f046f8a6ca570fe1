import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A private D-Bus session bus for one test file: its own dbus-daemon on a socket in a temp
 * folder, never the user's bus. `serviceDir` makes it a bus with D-Bus activation from that
 * folder only (for the tests that count activations); otherwise it is Debian's session config.
 */
export interface PrivateBus {
  address: string;
  dir: string;
  stop(): Promise<void>;
}

export async function startPrivateBus(opts: { serviceDir?: string } = {}): Promise<PrivateBus> {
  const dir = mkdtempSync(join(tmpdir(), 'cvm-bus-'));
  const args = ['--nofork', '--print-address=1', `--address=unix:path=${join(dir, 'bus')}`];
  if (opts.serviceDir) {
    const conf = join(dir, 'bus.conf');
    writeFileSync(
      conf,
      `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=${join(dir, 'unused')}</listen>
  <servicedir>${opts.serviceDir}</servicedir>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`,
    );
    args.unshift(`--config-file=${conf}`);
  } else args.unshift('--session');
  const child: ChildProcess = spawn('dbus-daemon', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d) => (stderr += d));
  const address = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve(out.slice(0, nl).trim());
    });
    child.once('error', (e) => reject(new Error(`dbus-daemon did not start: ${e.message}`)));
    child.once('exit', (code) => reject(new Error(`dbus-daemon exited with ${code}: ${stderr}`)));
  });
  return {
    address,
    dir,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
