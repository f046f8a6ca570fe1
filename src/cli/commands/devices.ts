import type { Command } from 'commander';
import type { DeviceRecord } from '../../host/control/store.js';
import { action, addExamples, printJson } from '../common.js';

function line(d: DeviceRecord): string {
  const who =
    d.channel === 'control'
      ? 'control API'
      : d.channel === 'dashboard'
        ? 'dashboard login of the owner'
        : `${d.channel} user ${d.channelUser ?? '?'}`;
  const seen = d.lastSeenAt ? ` · last seen ${new Date(d.lastSeenAt).toISOString()}` : '';
  const revoked = d.revokedAt
    ? ` · REVOKED ${new Date(d.revokedAt).toISOString()} by ${d.revokedBy ?? '?'}`
    : '';
  return `${d.id}  ${d.role.padEnd(8)} ${d.name} (${who}) · paired ${new Date(d.createdAt).toISOString()}${seen}${revoked}\n`;
}

export function register(program: Command): void {
  const devices = program
    .command('devices')
    .description('List paired devices and messaging accounts; `devices revoke ID` cuts one off at once')
    .option('--json', 'print machine-readable JSON')
    .option('--all', 'include revoked devices')
    .action(
      action(async (flags: { json?: boolean; all?: boolean }) => {
        const { listDevices } = await import('../../host/control/devices.js');
        const list = listDevices({ includeRevoked: flags.all ?? false });
        if (flags.json) return printJson(list);
        if (list.length === 0)
          return void process.stdout.write('no paired devices — pair one with `cowork-vm pair`\n');
        for (const d of list) process.stdout.write(line(d));
      }),
    );
  devices
    .command('revoke')
    .description('Revoke a device now: its key stops working and open sessions are closed')
    .argument('<id>', 'device id from `cowork-vm devices`')
    .action(
      action(async (id: string) => {
        const { revokeDevice } = await import('../../host/control/devices.js');
        const d = revokeDevice(id);
        process.stdout.write(
          `revoked ${d.id} (${d.name}); a running controller closes its sessions within a second\n`,
        );
      }),
    );
  addExamples(devices, [
    'cowork-vm devices',
    'cowork-vm devices --json',
    'cowork-vm devices revoke 3f9a1c02de',
  ]);
}
