import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SandboxCA } from '../../src/host/egress/sandbox-ca.js';
import { guestTrust, hostAddedCas, hostCaDir } from '../../src/host/sandbox/guest-trust.js';
import { writeSeed } from '../../src/host/sandbox/seed.js';
import { makeTestCa } from '../helpers/https-upstream.js';

const dir = mkdtempSync(join(tmpdir(), 'guest-trust-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const corp = makeTestCa('corp inspecting CA');
const hostDir = join(dir, 'host-ca');
mkdirSync(join(hostDir, 'corp'), { recursive: true });
writeFileSync(join(hostDir, 'corp', 'inspecting.crt'), corp.certPem);
writeFileSync(join(hostDir, 'leaf.crt'), corp.issue('www.corp.test').cert); // not a CA: skipped
writeFileSync(join(hostDir, 'notes.txt'), corp.certPem); // not *.crt: not read
const testEnv = { COWORK_VM_TEST_RESOLVE: '1', COWORK_VM_TEST_HOST_CA_DIR: hostDir };

describe('guest trust', () => {
  it('reads the CAs an administrator added (*.crt at any depth), CA certificates only', () => {
    const found = hostAddedCas(hostDir);
    expect(found.cas.map((c) => c.subject)).toEqual(['CN=corp inspecting CA']);
    expect(found.skipped).toEqual([`${join(hostDir, 'leaf.crt')}: no CA certificate in it`]);
  });

  it('puts the sandbox CA first, then the host CAs, then extraCAs; trustHostCAs = false leaves the host out', () => {
    const extra = join(dir, 'extra.pem');
    writeFileSync(extra, makeTestCa('extra CA').certPem);
    const sandboxCaPem = SandboxCA.create('t').certPem;
    const on = guestTrust({ guest: { trustHostCAs: true, extraCAs: [extra] }, sandboxCaPem, env: testEnv });
    expect(on.cas.map((c) => c.source)).toEqual(['sandbox', 'host', 'extra']);
    const off = guestTrust({ guest: { trustHostCAs: false, extraCAs: [] }, sandboxCaPem, env: testEnv });
    expect(off.cas.map((c) => c.source)).toEqual(['sandbox']);
    expect(off.cas.some((c) => c.pem === corp.certPem)).toBe(false);
  });

  it('fails closed on an extraCAs entry that is missing or holds no CA, naming the key', () => {
    const guest = (extraCAs: string[]) => ({ trustHostCAs: false, extraCAs });
    expect(() => guestTrust({ guest: guest(['/nonexistent/ca.pem']), env: {} })).toThrow(
      /guest\.extraCAs\[0\].*cannot read it/,
    );
    writeFileSync(join(dir, 'junk.pem'), 'not a certificate');
    expect(() => guestTrust({ guest: guest([join(dir, 'junk.pem')]), env: {} })).toThrow(
      /holds no PEM CA certificate/,
    );
  });

  it('honours the test folder only in test mode', () => {
    expect(hostCaDir({})).toBe('/usr/local/share/ca-certificates');
    expect(hostCaDir(testEnv)).toBe(hostDir);
    expect(() => hostCaDir({ COWORK_VM_TEST_HOST_CA_DIR: hostDir })).toThrow(/only for tests/);
  });

  it('the seed carries each certificate in trust/, and refuses anything that is not one certificate', () => {
    const seed = join(dir, 'seed');
    const base = { hostPrivateKey: 'k', clientPublicKey: 'p', agentUid: 1000, agentGid: 1000, hostname: 'h' };
    const ca = SandboxCA.create('seed');
    writeSeed(seed, { ...base, trust: [ca.certPem, corp.certPem] });
    expect(readdirSync(join(seed, 'trust')).sort()).toEqual(['00.crt', '01.crt', 'hashes']);
    expect(readFileSync(join(seed, 'trust', '00.crt'), 'utf8')).toBe(ca.certPem);
    // Each CA's OpenSSL subject hash, as `openssl x509 -hash` gives it (the guest's CApath link name).
    const want = ['00.crt', '01.crt']
      .map((f) => {
        const h = execFileSync('openssl', ['x509', '-hash', '-noout', '-in', join(seed, 'trust', f)], {
          encoding: 'utf8',
        }).trim();
        return `${f} ${h}\n`;
      })
      .join('');
    expect(readFileSync(join(seed, 'trust', 'hashes'), 'utf8')).toBe(want);
    const leaf = ca.issue('api.test');
    expect(() => writeSeed(seed, { ...base, trust: [leaf.keyPem] })).toThrow(/not a single PEM certificate/);
    expect(() => writeSeed(seed, { ...base, trust: [`${ca.certPem}${leaf.keyPem}`] })).toThrow(
      /not a single PEM/,
    );
    writeSeed(seed, base);
    expect(readdirSync(seed)).not.toContain('trust');
  });
});
