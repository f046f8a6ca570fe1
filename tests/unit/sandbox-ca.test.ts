import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, describe, expect, it } from 'vitest';
import { oid, time, uint } from '../../src/host/egress/der.js';
import { SandboxCA } from '../../src/host/egress/sandbox-ca.js';

const dir = mkdtempSync(join(tmpdir(), 'sandbox-ca-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('DER pieces', () => {
  it('encodes OIDs, integers and times as X.690 says', () => {
    expect(oid('1.2.840.10045.4.3.2').toString('hex')).toBe('06082a8648ce3d040302');
    expect(uint(Buffer.from([0x80])).toString('hex')).toBe('02020080');
    expect(uint(Buffer.from([0, 0, 5])).toString('hex')).toBe('020105');
    expect(time(new Date('2026-12-03T12:00:00Z')).toString('ascii').slice(2)).toBe('261203120000Z');
    expect(time(new Date('2051-01-01T00:00:00Z'))[0]).toBe(0x18);
  });
});

describe('SandboxCA', () => {
  const ca = SandboxCA.create('unit');
  const leaf = ca.issue('api.test');

  it('is a CA certificate and issues leaves that OpenSSL verifies strictly', () => {
    const caCert = new X509Certificate(ca.certPem);
    expect(caCert.ca).toBe(true);
    expect(caCert.subject).toContain('cowork-vm sandbox egress CA unit');
    const l = new X509Certificate(leaf.certPem);
    expect(l.ca).toBe(false);
    expect(l.subjectAltName).toBe('DNS:api.test');
    expect(l.checkIssued(caCert)).toBe(true);
    expect(ca.issued(leaf.certPem)).toBe(true);
    writeFileSync(join(dir, 'ca.pem'), ca.certPem);
    writeFileSync(join(dir, 'leaf.pem'), leaf.certPem);
    const out = execFileSync('openssl', [
      'verify',
      '-x509_strict',
      '-purpose',
      'sslserver',
      '-verify_hostname',
      'api.test',
      '-CAfile',
      join(dir, 'ca.pem'),
      join(dir, 'leaf.pem'),
    ]).toString();
    expect(out).toContain('OK');
  });

  it("another sandbox CA does not vouch for this one's leaves", () => {
    expect(SandboxCA.create('other').issued(leaf.certPem)).toBe(false);
  });

  it('serves a TLS handshake that node verifies for the host name, and not for another', async () => {
    const server = tls.createServer({ SNICallback: (_n, cb) => cb(null, ca.contextFor('api.test')) }, (s) =>
      s.end('hi'),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as net.AddressInfo).port;
    const hello = (servername: string) =>
      new Promise<string>((resolve, reject) => {
        const c = tls.connect({ port, host: '127.0.0.1', servername, ca: [ca.certPem] });
        c.on('data', (d) => resolve(String(d)));
        c.on('error', reject);
      });
    try {
      expect(await hello('api.test')).toBe('hi');
      await expect(hello('evil.test')).rejects.toThrow(/altnames|Hostname/i);
    } finally {
      server.close();
    }
  });

  it('refuses to issue for anything but a host name', () => {
    expect(() => ca.issue('127.0.0.1:443')).toThrow(/host names only/);
    expect(() => ca.issue('*.test')).toThrow(/host names only/);
  });
});
