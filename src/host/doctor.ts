import { loadConfig } from './config/index.js';
import { installLine, missingRequirements, requirementsFor } from './host-requirements.js';
import { hostPaths } from './paths.js';
import { guestTrust } from './sandbox/index.js';
import type { Accel } from './vm/driver.js';
import { ImageStore } from './vm/images.js';
import { createDriver } from './vm/index.js';

export interface DoctorCheck {
  name: string;
  ok: boolean;
  detail: string;
  /** The command (or step) that fixes it. */
  fix?: string;
}

/**
 * What this host has and lacks for cowork-vm, each with the command that fixes it. The same
 * function serves `cowork-vm doctor` and (later) the dashboard.
 */
export async function runDoctor(
  opts: { accel?: Accel; env?: NodeJS.ProcessEnv } = {},
): Promise<DoctorCheck[]> {
  const env = opts.env ?? process.env;
  const checks: DoctorCheck[] = [];
  const setup = 'sudo bash scripts/setup-host.sh (in the cowork-vm folder)';

  const driver = await createDriver(process.platform, { paths: hostPaths(env) });
  const probe = await driver.probe({ accel: opts.accel ?? 'auto' });
  checks.push({
    name: `hypervisor (${driver.name})`,
    ok: probe.ok,
    detail: probe.ok
      ? probe.details?.qemu
        ? `${probe.details.qemu} (QEMU ${probe.details.qemuVersion ?? '?'})`
        : Object.entries(probe.details ?? {})
            .map(([k, v]) => `${k}: ${v}`)
            .join(', ') || 'usable'
      : (probe.reason ?? 'unusable'),
    fix: probe.ok ? undefined : (probe.fix ?? setup),
  });
  checks.push({
    name: 'accelerator',
    ok: Boolean(probe.accel),
    detail: probe.accel
      ? `${probe.accel}${probe.accelReason ? ` (${probe.accelReason})` : ''}`
      : 'not determined',
    fix: probe.accel ? undefined : 'force one with --accel tcg or COWORK_VM_ACCEL=tcg',
  });
  checks.push({
    name: 'workspace share',
    ok: true,
    detail: probe.details?.shareMode
      ? `${probe.details.shareMode}${probe.details.shareReason ? ` (${probe.details.shareReason})` : ''}`
      : 'decided at start',
  });

  // Host packages, from the one requirements list (scripts/host-requirements.tsv).
  for (const [role, label] of [
    ['runtime', 'host packages for start/exec'],
    ['image', 'host packages for image build'],
  ] as const) {
    const need = requirementsFor([role]);
    const missing = missingRequirements([role]);
    checks.push({
      name: label,
      ok: missing.length === 0,
      detail: missing.length
        ? `missing ${missing.map((m) => `${m.missing.join(', ')} (${m.requirement.package})`).join('; ')}`
        : `${need.length} packages present (${need.map((r) => r.package).join(', ')})`,
      fix: missing.length
        ? `${installLine(missing.map((m) => m.requirement.package))}  (or: ${setup})`
        : undefined,
    });
  }

  const store = new ImageStore(hostPaths(env));
  for (const name of ['base', 'browser']) {
    try {
      const img = await store.resolve(name, undefined, { verify: true });
      checks.push({
        name: `image ${name}`,
        ok: true,
        detail: `${img.dir} (kernel ${img.manifest.kernelVersion})`,
      });
    } catch (err) {
      checks.push({
        name: `image ${name}`,
        ok: name !== 'base',
        detail:
          (err as Error).message.split(' — ')[0] +
          (name !== 'base' ? ' (only needed for --image browser)' : ''),
        fix: `cowork-vm image build ${name}`,
      });
    }
  }
  checks.push(guestTrustCheck(env));
  return checks;
}

/** Which CAs the guest will trust besides Debian's roots ([guest] trustHostCAs, extraCAs). */
export function guestTrustCheck(env: NodeJS.ProcessEnv): DoctorCheck {
  const name = 'guest trust (CAs added for the guest)';
  try {
    const { guest } = loadConfig({ env }).config;
    const trust = guestTrust({ guest, env });
    const list = (source: string) =>
      trust.cas
        .filter((c) => c.source === source)
        .map((c) => `${c.subject} (${c.file})`)
        .join('; ');
    const host = trust.cas.filter((c) => c.source === 'host').length;
    const extra = trust.cas.filter((c) => c.source === 'extra').length;
    const parts = [
      guest.trustHostCAs
        ? `${host} CA certificate(s) the host's administrator added in ${trust.hostDir}${host ? `: ${list('host')}` : ''}`
        : "the host's added CAs are off ([guest] trustHostCAs = false)",
      `${extra} from [guest] extraCAs${extra ? `: ${list('extra')}` : ''}`,
      ...trust.skipped.map((s) => `skipped ${s}`),
    ];
    return { name, ok: true, detail: parts.join(' · ') };
  } catch (err) {
    return { name, ok: false, detail: (err as Error).message, fix: 'fix [guest] in the cowork-vm config' };
  }
}
