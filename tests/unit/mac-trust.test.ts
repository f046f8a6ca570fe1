import { X509Certificate } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { guestTrust } from '../../src/host/sandbox/guest-trust.js';
import { adminTrustedSha1s, macAdminTrust, SYSTEM_KEYCHAIN } from '../../src/host/sandbox/mac-trust.js';
import { makeTestCa } from '../helpers/https-upstream.js';

/*
 * The Mac half of "the guest trusts what the host trusts", run on Linux against a stand-in for
 * Apple's `security` tool that answers the two commands the reader runs with fixed files: the
 * admin domain's trust settings (XML plist, as `trust-settings-export -d` writes it) and the
 * System keychain's certificates (PEM, as `find-certificate -a -p` prints them).
 */

const dir = mkdtempSync(join(tmpdir(), 'mac-trust-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sha1 = (pem: string) => new X509Certificate(pem).fingerprint.replace(/:/g, '');
const always = makeTestCa('corp always-trusted CA'); // "Always Trust": empty settings
const asRoot = makeTestCa('corp ssl-policy CA'); // trusted as root for one policy
const denied = makeTestCa('corp denied CA'); // explicitly never trusted
const plain = makeTestCa('keychain CA without trust settings'); // in the keychain only
const leaf = always.issue('www.corp.test').cert; // trusted, but not a CA

function entry(pem: string, settings: string): string {
  return `<key>${sha1(pem)}</key>
		<dict>
			<key>issuerName</key>
			<data>MBExDzANBgNVBAMMBmlzc3Vlcg==</data>
			<key>modDate</key>
			<date>2026-11-30T10:00:00Z</date>
			<key>serialNumber</key>
			<data>AQ==</data>
			<key>trustSettings</key>
			${settings}
		</dict>`;
}

const PLIST = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>trustList</key>
	<dict>
		${entry(always.certPem, '<array/>')}
		${entry(
      asRoot.certPem,
      `<array>
				<dict>
					<key>kSecTrustSettingsPolicy</key>
					<data>KoZIhvdjZAED</data>
					<key>kSecTrustSettingsPolicyName</key>
					<string>sslServer</string>
					<key>kSecTrustSettingsResult</key>
					<integer>2</integer>
				</dict>
			</array>`,
    )}
		${entry(
      denied.certPem,
      `<array>
				<dict>
					<key>kSecTrustSettingsResult</key>
					<integer>3</integer>
				</dict>
			</array>`,
    )}
		${entry(leaf, '<array/>')}
	</dict>
	<key>trustVersion</key>
	<integer>1</integer>
</dict>
</plist>
`;

/** A `security` stand-in: MODE=ok answers both commands, none says there are no settings, fail fails. */
function fakeSecurity(mode: 'ok' | 'none' | 'fail'): string {
  const plist = join(dir, 'admin.plist');
  const pems = join(dir, 'system.pem');
  writeFileSync(plist, PLIST);
  writeFileSync(pems, [always.certPem, asRoot.certPem, denied.certPem, plain.certPem, leaf].join(''));
  const bin = join(dir, `security-${mode}`);
  writeFileSync(
    bin,
    `#!/bin/sh
case "$1 $2" in
  "trust-settings-export -d")
    ${mode === 'none' ? `echo "SecTrustSettingsCreateExternalRepresentation: No Trust Settings were found." >&2; exit 1` : ''}
    ${mode === 'fail' ? `echo "security: SecKeychainSearchCopyNext: The specified keychain could not be found." >&2; exit 50` : ''}
    cp "${plist}" "$3" ;;
  "find-certificate -a")
    [ "$3" = "-p" ] && [ "$4" = "${SYSTEM_KEYCHAIN}" ] || { echo "unexpected: $*" >&2; exit 2; }
    cat "${pems}" ;;
  *) echo "unexpected: $*" >&2; exit 2 ;;
esac
`,
  );
  chmodSync(bin, 0o755);
  return bin;
}

const envFor = (mode: 'ok' | 'none' | 'fail') => ({
  COWORK_VM_TEST_RESOLVE: '1',
  COWORK_VM_TEST_SECURITY_BIN: fakeSecurity(mode),
});

describe('macOS: admin-trusted CAs of the System keychain', () => {
  it('reads the trust settings: empty or trust-as-root counts, a deny excludes, unknown SHA-1s do not exist', () => {
    const got = adminTrustedSha1s(PLIST);
    expect([...got].sort()).toEqual([sha1(always.certPem), sha1(asRoot.certPem), sha1(leaf)].sort());
  });

  it('hands the guest exactly the admin-trusted CAs: not the denied one, not one without settings, not a leaf', () => {
    const { trusted } = macAdminTrust(envFor('ok'));
    expect([...trusted].sort()).toEqual([sha1(always.certPem), sha1(asRoot.certPem), sha1(leaf)].sort());
    const trust = guestTrust({
      guest: { trustHostCAs: true, extraCAs: [] },
      env: envFor('ok'),
      platform: 'darwin',
    });
    expect(trust.cas.map((c) => c.subject).sort()).toEqual([
      'CN=corp always-trusted CA',
      'CN=corp ssl-policy CA',
    ]);
    expect(trust.cas.every((c) => c.source === 'host')).toBe(true);
    expect(trust.skipped).toEqual([`${SYSTEM_KEYCHAIN}: an admin-trusted certificate that is not a CA`]);
    expect(trust.hostDir).toContain(SYSTEM_KEYCHAIN);
    const off = guestTrust({
      guest: { trustHostCAs: false, extraCAs: [] },
      env: envFor('ok'),
      platform: 'darwin',
    });
    expect(off.cas).toEqual([]);
  });

  it('no admin trust settings at all is nothing added; any other failure of security is an error naming it', () => {
    expect(macAdminTrust(envFor('none'))).toEqual({ trusted: new Set(), keychainPems: '' });
    expect(() =>
      guestTrust({ guest: { trustHostCAs: true, extraCAs: [] }, env: envFor('fail'), platform: 'darwin' }),
    ).toThrow(/cannot read the admin trust settings .*trust-settings-export -d.*keychain could not be found/);
  });

  it('honours the stand-in only in tests', () => {
    expect(() => macAdminTrust({ COWORK_VM_TEST_SECURITY_BIN: '/bin/true' })).toThrow(/only for tests/);
  });
});
