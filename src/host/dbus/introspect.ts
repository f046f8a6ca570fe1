import type { ExportedInterface } from './connection.js';

/*
 * org.freedesktop.DBus.Introspectable for our exported objects: what a panel or `gdbus
 * introspect` reads to learn the methods, signals and properties, plus child nodes.
 */

const STANDARD = `  <interface name="org.freedesktop.DBus.Introspectable">
    <method name="Introspect"><arg type="s" name="xml" direction="out"/></method>
  </interface>
  <interface name="org.freedesktop.DBus.Properties">
    <method name="Get"><arg type="s" direction="in"/><arg type="s" direction="in"/><arg type="v" direction="out"/></method>
    <method name="GetAll"><arg type="s" direction="in"/><arg type="a{sv}" direction="out"/></method>
    <method name="Set"><arg type="s" direction="in"/><arg type="s" direction="in"/><arg type="v" direction="in"/></method>
    <signal name="PropertiesChanged"><arg type="s"/><arg type="a{sv}"/><arg type="as"/></signal>
  </interface>
  <interface name="org.freedesktop.DBus.Peer"><method name="Ping"/></interface>`;

export function introspectionXml(
  path: string,
  ifaces: Map<string, ExportedInterface> | undefined,
  allPaths: string[],
): string {
  const lines = [
    '<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"',
    ' "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">',
    '<node>',
  ];
  for (const iface of ifaces?.values() ?? []) lines.push(interfaceXml(iface));
  if (ifaces) lines.push(STANDARD);
  const prefix = path === '/' ? '/' : `${path}/`;
  const children = new Set(
    allPaths
      .filter((p) => p.startsWith(prefix) && p !== path)
      .map((p) => p.slice(prefix.length).split('/')[0]),
  );
  for (const c of children) lines.push(`  <node name="${c}"/>`);
  lines.push('</node>');
  return lines.join('\n');
}

function interfaceXml(iface: ExportedInterface): string {
  const out = [`  <interface name="${iface.name}">`];
  for (const [name, m] of Object.entries(iface.methods ?? {})) {
    out.push(`    <method name="${name}">${args(m.in, 'in')}${args(m.out, 'out')}</method>`);
  }
  for (const [name, sig] of Object.entries(iface.signals ?? {})) {
    out.push(`    <signal name="${name}">${args(sig)}</signal>`);
  }
  for (const [name, p] of Object.entries(iface.properties ?? {})) {
    out.push(`    <property name="${name}" type="${p.type}" access="read"/>`);
  }
  out.push('  </interface>');
  return out.join('\n');
}

/** One <arg> per complete type of a signature. */
function args(signature: string | undefined, direction?: 'in' | 'out'): string {
  const dir = direction ? ` direction="${direction}"` : '';
  return completeTypes(signature ?? '')
    .map((t) => `<arg type="${t}"${dir}/>`)
    .join('');
}

export function completeTypes(signature: string): string[] {
  const types: string[] = [];
  let i = 0;
  const one = (): void => {
    const c = signature[i++];
    if (c === 'a') {
      one();
      return;
    }
    const close = c === '(' ? ')' : c === '{' ? '}' : undefined;
    if (close) {
      while (i < signature.length && signature[i] !== close) one();
      i++;
    }
  };
  while (i < signature.length) {
    const start = i;
    one();
    types.push(signature.slice(start, i));
  }
  return types;
}
