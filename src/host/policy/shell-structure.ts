import { BIN_OPS, type ShellParser, type ShNode } from './shell-parser.js';
import type { CommandAnalysis } from './shell-types.js';
import { DOWNLOADERS, INTERPRETERS, interpreterName, SHELLS, shellDashC } from './shell-vocab.js';
import { resolveWord } from './words.js';
import { unwrap } from './wrappers.js';

/** Structural dangers that need the syntax tree, not just the list of simple commands. */

/**
 * Fork bombs: functions that reach themselves through calls (directly or by mutual recursion:
 * `a(){ b|b& }; b(){ a|a& }; a`) where some function on the cycle spawns (a pipe or `&`).
 */
export function forkBombFindings(parser: ShellParser, funcs: ShNode[], a: CommandAnalysis): void {
  const calls = new Map<string, Set<string>>();
  const spawning = new Set<string>();
  for (const node of funcs) {
    const fname = String((node.Name as ShNode | null)?.Value ?? '');
    const callees = calls.get(fname) ?? new Set<string>();
    calls.set(fname, callees);
    parser.walk(node.Body as ShNode, (n, t) => {
      if (t === 'CallExpr') {
        const u = unwrap(((n.Args as ShNode[]) ?? []).map((w) => resolveWord(parser, w)));
        const first = u.argv[0];
        if (first) callees.add(first.params.includes('FUNCNAME') ? fname : first.text);
      } else if (t === 'Stmt' && n.Background) spawning.add(fname);
      else if (t === 'BinaryCmd' && ['|', '|&'].includes(BIN_OPS[n.Op as number] ?? '')) spawning.add(fname);
      return true;
    });
  }
  for (const start of calls.keys()) {
    // depth-first search for a path start → … → start, remembering whether it spawns
    const seen = new Set<string>();
    const stack: [string, boolean][] = [[start, spawning.has(start)]];
    while (stack.length > 0) {
      const [f, spawns] = stack.pop() as [string, boolean];
      for (const g of calls.get(f) ?? []) {
        const s = spawns || spawning.has(g);
        if (g === start && s) {
          a.findings.push({
            effect: 'deny',
            rule: 'builtin:fork-bomb',
            reason: `function \`${start}\` reaches itself through calls that spawn processes (a fork bomb)`,
          });
          return;
        }
        if (calls.has(g) && !seen.has(`${g}|${s}`)) {
          seen.add(`${g}|${s}`);
          stack.push([g, s]);
        }
      }
    }
  }
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
