import { describe, expect, it } from 'vitest';
import { parseQemuVersion, parseTscKhz } from '../../src/host/vm/qemu/host-facts.js';
import { escapeFuseOption, virtiofsdArgs } from '../../src/host/vm/qemu/virtiofsd.js';

describe('host facts parsing', () => {
  it('reads the QEMU version from --version output', () => {
    expect(
      parseQemuVersion('QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright'),
    ).toBe('7.2.22');
    expect(parseQemuVersion('QEMU emulator version 9.0\n')).toBe('9.0');
    expect(parseQemuVersion('something else')).toBeUndefined();
  });

  it('reads the TSC rate only for constant_tsc CPUs', () => {
    const cpu =
      'model name\t: AMD EPYC\ncpu MHz\t\t: 2596.148\nflags\t\t: fpu tsc constant_tsc nonstop_tsc\n';
    expect(parseTscKhz(cpu)).toBe(2596148);
    expect(parseTscKhz(cpu.replace(' constant_tsc', ''))).toBeUndefined();
    expect(parseTscKhz('flags : constant_tsc\n')).toBeUndefined();
  });

  it('under cpufreq, trusts cpu MHz only with tsc_known_freq, else Intel base_frequency, else nothing', () => {
    const cpu = 'cpu MHz\t\t: 799.998\nflags\t\t: tsc constant_tsc\n';
    expect(parseTscKhz(cpu, { scaling: true })).toBeUndefined(); // 800 MHz is the idle clock, not the TSC
    expect(parseTscKhz(cpu, { scaling: true, baseFrequencyKhz: 2_900_000 })).toBe(2_900_000);
    expect(parseTscKhz(cpu.replace('constant_tsc', 'constant_tsc tsc_known_freq'), { scaling: true })).toBe(
      799998,
    );
    expect(parseTscKhz(cpu, { scaling: true, baseFrequencyKhz: Number.NaN })).toBeUndefined();
  });
});

describe('virtiofsd arguments', () => {
  it('escapes commas and backslashes in the shared folder so no option can be injected', () => {
    expect(escapeFuseOption('/w/a,b\\c')).toBe('/w/a\\,b\\\\c');
    expect(virtiofsdArgs({ socketPath: '/r/v.sock', sharedDir: '/w/x,sandbox=none' })).toEqual([
      '--socket-path=/r/v.sock',
      '-o',
      'source=/w/x\\,sandbox=none',
      '-o',
      'cache=none',
    ]);
  });

  it("takes the bench's tuning knobs, and keeps cache=none without them", () => {
    expect(
      virtiofsdArgs({
        socketPath: '/r/v.sock',
        sharedDir: '/w',
        tuning: { virtiofsCache: 'auto', virtiofsTimeoutS: 0, virtiofsThreadPoolSize: 4 },
      }),
    ).toEqual([
      '--socket-path=/r/v.sock',
      '-o',
      'source=/w',
      '-o',
      'cache=auto',
      '-o',
      'timeout=0',
      '--thread-pool-size=4',
    ]);
  });
});
