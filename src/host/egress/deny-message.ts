import { hostPortText } from './host.js';

/**
 * The text a blocked client (the agent, via curl or the browser) receives. It MUST say that the
 * egress policy blocked it (not the remote site), why, and what a user can change to allow it.
 */
export interface DenyInfo {
  what: string; // 'GET http://example.com/' or 'CONNECT example.com:443'
  host: string;
  port: number;
  stage: string;
  reason: string;
  rule?: string;
  address?: string;
  verdictMessage?: string;
}

export function denyMessage(info: DenyInfo): string {
  // A port-less allow entry means 443 for CONNECT and 80 for plain HTTP: name any other port.
  const standard = info.what.startsWith('CONNECT ') ? 443 : 80;
  const entry = info.port === standard ? info.host : hostPortText(info.host, info.port);
  const lines = [
    `Blocked by the cowork-vm egress policy: ${info.what} was refused by the sandbox's proxy, not by the remote site.`,
    `Reason: ${info.reason}${info.rule ? ` (rule ${JSON.stringify(info.rule)})` : ''}.`,
  ];
  switch (info.stage) {
    case 'deny-list':
      lines.push(
        `To allow it, a user must remove ${JSON.stringify(info.rule ?? info.host)} from [egress] deny in the cowork-vm config.`,
      );
      break;
    case 'ssrf': {
      const ip = info.address ?? '<address>';
      const ipEntry = hostPortText(ip, info.port);
      lines.push(
        'The proxy never connects to loopback, private, link-local, CGNAT, multicast or cloud-metadata addresses ' +
          'unless an allow rule names the IP address literally.',
        `If this is really wanted, a user can add to the cowork-vm config: [egress] allow = [${JSON.stringify(ipEntry)}]`,
      );
      break;
    }
    case 'approval':
      lines.push(
        `A user declined it when asked${info.verdictMessage ? `: ${info.verdictMessage}` : '.'}`,
        `To allow it permanently, a user can add to the cowork-vm config: [egress] allow = [${JSON.stringify(entry)}]`,
      );
      break;
    case 'credential':
      lines.push(
        `${info.host} has a credential rule ([[egress.credentials]]): the sandbox adds its credential itself, over https://${info.host}/ only, within the rule's methods and paths.`,
        'Send the request over HTTPS without any credential of your own; a user can change the rule in the cowork-vm config.',
      );
      break;
    case 'resolve':
      lines.push('The host name could not be resolved on the host, so there is nothing to connect to.');
      break;
    default:
      lines.push(
        `To allow it, a user can add to the cowork-vm config (config.toml): [egress] allow = [${JSON.stringify(entry)}]` +
          ' (or set ask = true under [egress] to be asked for hosts that are not listed).',
      );
  }
  lines.push('Retrying will not help until the policy changes; tell the user what you needed and why.');
  return `${lines.join('\n')}\n`;
}
