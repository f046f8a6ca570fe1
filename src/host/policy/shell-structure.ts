import type { CommandAnalysis } from './shell-analysis.js';
import { BIN_OPS, type ShellParser, type ShNode } from './shell-parser.js';
import { DOWNLOADERS, INTERPRETERS, interpreterName, SHELLS, shellDashC } from './shell-vocab.js';
import { resolveWord } from './words.js';
import { unwrap } from './wrappers.js';

/** Structural dangers that need the syntax tree, not just the list of simple commands. */

/** A function that calls itself in a pipe or in the background: a fork bomb. */
export function forkBombFindings(parser: ShellParser, node: ShNode, a: CommandAnalysis): void {
  const fname = String((node.Name as ShNode | null)?.Value ?? '');
  let selfCall = false;
  let spawns = false;
  parser.walk(node.Body as ShNode, (n, t) => {
    if (t === 'CallExpr') {
      const first = ((n.Args as ShNode[]) ?? [])[0];
      if (first && resolveWord(parser, first).text === fname) selfCall = true;
    } else if (t === 'Stmt' && n.Background) spawns = true;
    else if (
      t === 'BinaryCmd' &&
      BIN_OPS[n.Op as number]?.startsWith('|') &&
      BIN_OPS[n.Op as number] !== '||'
    )
      spawns = true;
    return true;
  });
  if (selfCall && spawns)
    a.findings.push({
      effect: 'deny',
      rule: 'builtin:fork-bomb',
      reason: `function \`${fname}\` calls itself in a pipe or in the background (a fork bomb)`,
    });
}

/** `curl … | sh`: any stage that downloads, followed by a stage that is a shell reading stdin. */
export function pipelineFindings(parser: ShellParser, node: ShNode, a: CommandAnalysis): void {
  const stages: ShNode[] = [];
  const flatten = (stmt: ShNode) => {
    const c = stmt.Cmd as ShNode | null;
    if (c && parser.type(c) === 'BinaryCmd' && ['|', '|&'].includes(BIN_OPS[c.Op as number] ?? '')) {
      flatten(c.X as ShNode);
      flatten(c.Y as ShNode);
    } else stages.push(stmt);
  };
  flatten(node.X as ShNode);
  flatten(node.Y as ShNode);
  let downloaded = false;
  for (const [i, stage] of stages.entries()) {
    const names = commandNames(parser, stage);
    if (i > 0) {
      const interp = names.find((n) => n.interp && n.readsStdin);
      if (interp) {
        if (downloaded)
          a.findings.push({
            effect: 'deny',
            rule: 'builtin:curl-pipe-shell',
            reason: `downloaded content is piped into \`${interp.name}\``,
          });
        else
          a.findings.push({
            effect: 'ask',
            rule: 'analysis:pipe-to-interpreter',
            reason: `output is piped into \`${interp.name}\`, which runs it as a program`,
          });
      }
    }
    if (names.some((n) => DOWNLOADERS.has(n.name))) downloaded = true;
  }
}

function commandNames(
  parser: ShellParser,
  stmt: ShNode,
): { name: string; interp: boolean; readsStdin: boolean }[] {
  const out: { name: string; interp: boolean; readsStdin: boolean }[] = [];
  parser.walk(stmt, (n, t) => {
    if (t !== 'CallExpr') return true;
    const u = unwrap(((n.Args as ShNode[]) ?? []).map((w) => resolveWord(parser, w)));
    const head = u.argv[0];
    if (!head || head.dynamic) return true;
    const name = interpreterName(head.text);
    const args = u.argv.slice(1);
    const operand = args.find((w) => !w.text.startsWith('-') || w.dynamic);
    const dashC = SHELLS.has(name) && shellDashC(args) !== undefined;
    const readsStdin =
      !dashC &&
      (operand === undefined ||
        operand.text === '-' ||
        operand.text === '/dev/stdin' ||
        args.some((w) => w.text === '-s'));
    out.push({ name, interp: INTERPRETERS.has(name) || name === 'source' || name === '.', readsStdin });
    return true;
  });
  return out;
}
