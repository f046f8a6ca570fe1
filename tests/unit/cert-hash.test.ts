import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { subjectHash } from '../../src/host/sandbox/cert-hash.js';

// The reference is OpenSSL itself: `openssl x509 -hash` on the same certificate.
const opensslHash = (file: string): string =>
  execFileSync('openssl', ['x509', '-hash', '-noout', '-in', file], { encoding: 'utf8' }).trim();

const dir = mkdtempSync(join(tmpdir(), 'cert-hash-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A self-signed certificate with this subject (openssl req -subj syntax), written to a file. */
function cert(name: string, subject: string, extra: string[] = [], config?: string): string {
  const out = join(dir, `${name}.pem`);
  const args = ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  if (config) {
    writeFileSync(join(dir, `${name}.cnf`), config);
    args.push('-config', join(dir, `${name}.cnf`));
  }
  args.push('-keyout', join(dir, `${name}.key`), '-out', out, '-days', '1', '-subj', subject, ...extra);
  execFileSync('openssl', args, { stdio: 'pipe' });
  return out;
}

describe('subjectHash (the CApath name OpenSSL looks a CA up by)', () => {
  it('matches openssl x509 -hash on every Mozilla root Debian ships', () => {
    const roots = '/usr/share/ca-certificates/mozilla';
    const files = readdirSync(roots).filter((f) => f.endsWith('.crt'));
    expect(files.length).toBeGreaterThan(50);
    const wrong = files.filter(
      (f) => subjectHash(readFileSync(join(roots, f), 'utf8')) !== opensslHash(join(roots, f)),
    );
    expect(wrong).toEqual([]);
  });

  it('canonicalises like OpenSSL: case, outer and inner whitespace, multi-valued RDNs, BMPString', () => {
    const files = [
      cert('spaces', '/CN=  Foo   BAR  /O=Zeta+OU=alpha/C=DE', ['-multivalue-rdn']),
      cert('order', '/CN=x/OU=b+O=a', ['-multivalue-rdn']),
      cert(
        'bmp',
        '/CN=Grüße  Welt/O=ÄBC',
        ['-utf8'],
        '[req]\ndistinguished_name=dn\nstring_mask=MASK:0x800\n[dn]\n',
      ),
      cert('utf8', '/CN=ÉCOLE Tab\tHere/emailAddress=Admin@Example.COM', ['-utf8']),
    ];
    for (const f of files) expect(subjectHash(readFileSync(f, 'utf8')), f).toBe(opensslHash(f));
    // Same name modulo case and spacing: the same hash, as OpenSSL's lookup needs.
    expect(
      subjectHash(
        readFileSync(cert('same', '/CN=foo bar/O=zeta+OU=ALPHA/C=de', ['-multivalue-rdn']), 'utf8'),
      ),
    ).toBe(subjectHash(readFileSync(files[0]!, 'utf8')));
  });

  it('refuses what is not a certificate', () => {
    expect(() => subjectHash('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n')).toThrow();
  });
});
