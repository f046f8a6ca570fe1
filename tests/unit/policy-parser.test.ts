/* biome-ignore-all lint/suspicious/noTemplateCurlyInString: shell text, not templates */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createPolicyEngine } from '../../src/host/policy/index.js';
import { type CommandAnalysis, ShellAnalyzer } from '../../src/host/policy/shell-analysis.js';
import { BIN_OPS, PROC_SUBST_OPS, REDIR_OPS, ShellParser } from '../../src/host/policy/shell-parser.js';
import { decodeAnsiC } from '../../src/host/policy/words.js';

const engine = createPolicyEngine();
/** Every simple command found, as its running argv (wrappers looked through). */
const cmds = (src: string) => engine.analyze(src).commands.map((c) => c.argv.map((w) => w.text).join(' '));

describe('mvdan/sh token numbers', () => {
  const parser = new ShellParser();
  it('binary, redirection and process-substitution operators match our tables', () => {
    for (const [num, op] of Object.entries(BIN_OPS)) {
      const f = parser.parse(`a ${op} b`) as { Stmts: { Cmd: { Op: number } }[] };
      expect(f.Stmts[0]?.Cmd.Op).toBe(Number(num));
    }
    for (const [num, op] of Object.entries(REDIR_OPS)) {
      const src = op === '<<' || op === '<<-' ? `cat ${op}EOF\nx\nEOF\n` : `cat ${op} f`;
      const f = parser.parse(src) as { Stmts: { Redirs: { Op: number }[] }[] };
      expect(f.Stmts[0]?.Redirs[0]?.Op).toBe(Number(num));
    }
    for (const [num, op] of Object.entries(PROC_SUBST_OPS)) {
      const f = parser.parse(`cat ${op}ls)`) as { Stmts: { Cmd: { Args: { Parts: { Op: number }[] }[] } }[] };
      expect(f.Stmts[0]?.Cmd.Args[1]?.Parts[0]?.Op).toBe(Number(num));
    }
  });
  it('reports parse errors with position', () => {
    expect(() => parser.parse('echo "x')).toThrowError(/1:6: reached EOF without closing quote/);
  });
});

describe('every construct yields its simple commands', () => {
  it.each([
    ['a | b | c', ['a', 'b', 'c']],
    ['a |& b', ['a', 'b']],
    ['a; b', ['a', 'b']],
    ['a && b || c', ['a', 'b', 'c']],
    ['a & b', ['a', 'b']],
    ['a\nb\n\nc', ['a', 'b', 'c']],
    ['(a; b)', ['a', 'b']],
    ['{ a; b; }', ['a', 'b']],
    ['echo $(a x)', ['echo $(…)', 'a x']],
    ['echo `a x`', ['echo $(…)', 'a x']],
    ['echo "in $(a) quotes"', ['echo in $(…) quotes', 'a']],
    ['diff <(a) >(b)', ['diff $(…) $(…)', 'a', 'b']],
    ['cat <<EOF\n$(a)\n`b`\nEOF', ['cat', 'a', 'b']],
    ["cat <<'EOF'\n$(a)\nEOF", ['cat']],
    ['if a; then b; elif c; then d; else e; fi', ['a', 'b', 'c', 'd', 'e']],
    ['while a; do b; done; until c; do d; done', ['a', 'b', 'c', 'd']],
    ['for x in $(a); do b "$x"; done', ['a', 'b $x']],
    ['case $(a) in x) b;; *) c;; esac', ['a', 'b', 'c']],
    ['f() { a; }; f', ['a', 'f']],
    ['! a', ['a']],
    ['time a', ['a']],
    ['coproc a', ['a']],
    ['[[ -n $(a) ]]', ['a']],
    ['x=$(a) b', ['a', 'b']],
    ['a > $(b)', ['a', 'b']],
  ])('%j', (src, expected) => {
    expect(cmds(src)).toEqual(expect.arrayContaining(expected));
  });
});

describe('quotes, escapes and names are resolved', () => {
  it.each([
    ["'su'do", 'sudo'],
    ['"sudo"', 'sudo'],
    ['s\\udo', 'sudo'],
    ['s""udo', 'sudo'],
    ["$'\\x73\\x75do'", 'sudo'],
    ["$'\\163udo'", 'sudo'],
    ['/usr/bin/sudo', 'sudo'],
    ['../../bin/sudo', 'sudo'],
    ['su\\\ndo', 'sudo'],
  ])('%j runs %j', (word, name) => {
    expect(engine.analyze(`${word} x`).commands[0]?.name).toBe(name);
  });

  it('decodes ANSI-C escapes', () => {
    expect(decodeAnsiC('a\\tb\\n\\x41\\101\\u00e9\\cA\\\\')).toBe('a\tb\nAA\u00e9\x01\\');
  });

  it('keeps the words of double-quoted escapes', () => {
    expect(engine.analyze('echo "a\\$b" "c\\d"').commands[0]?.argv.map((w) => w.text)).toEqual([
      'echo',
      'a$b',
      'c\\d',
    ]);
  });

  it('marks expansions and brace expansion as dynamic, globs as globs', () => {
    const [c] = engine.analyze('x $HOME ${A:-b} {a,b} *.ts "$(y)"').commands;
    expect(c?.argv.map((w) => [w.text, w.dynamic, w.glob])).toEqual([
      ['x', false, false],
      ['$HOME', true, false],
      ['${…}', true, false],
      ['{a,b}', true, false],
      ['*.ts', false, true],
      ['$(…)', true, false],
    ]);
  });
});

describe('wrappers are looked through', () => {
  it.each([
    ['env -i A=1 B=2 make all', 'make all', ['env'], ['A', 'B']],
    ['env -u X -C /tmp -- make', 'make', ['env'], []],
    ['nice -n 5 make', 'make', ['nice'], []],
    ['nice -5 make', 'make', ['nice'], []],
    ['timeout -k 1 -s TERM 10s make', 'make', ['timeout'], []],
    ['timeout --preserve-status 10 make', 'make', ['timeout'], []],
    ['nohup make', 'make', ['nohup'], []],
    ['command -p make', 'make', ['command'], []],
    ['exec -a foo make', 'make', ['exec'], []],
    ['builtin echo x', 'echo x', ['builtin'], []],
    ['xargs -0 -n 2 -P4 make', 'make', ['xargs'], []],
    ['/usr/bin/time -v make', 'make', ['time'], []],
    ['stdbuf -oL -e0 make', 'make', ['stdbuf'], []],
    ['env nice nohup timeout 5 make', 'make', ['env', 'nice', 'nohup', 'timeout'], []],
    ['command -v make', 'command -v make', [], []],
    ['env', 'env', [], []],
  ])('%j runs %j', (src, argv, wrappers, assigns) => {
    const [c] = engine.analyze(src).commands;
    expect(c?.argv.map((w) => w.text).join(' ')).toBe(argv);
    expect(c?.wrappers).toEqual(wrappers);
    expect(c?.assigns).toEqual(assigns);
  });

  it('xargs marks unseen arguments', () => {
    expect(engine.analyze('xargs rm').commands[0]?.dynamicArgs).toBe(true);
    expect(engine.analyze('find . -exec rm {} \\;').commands.map((c) => [c.name, c.dynamicArgs])).toEqual([
      ['find', false],
      ['rm', true],
    ]);
  });
});

describe('command strings are analysed recursively, with a depth limit', () => {
  it.each([
    ["bash -c 'a; b'", ['a', 'b']],
    ["sh -ec 'a | b'", ['a', 'b']],
    ["bash -o pipefail -c 'a'", ['a']],
    ["eval 'a && b'", ['a', 'b']],
    ['eval a b', ['a b']],
    ['bash -c "sh -c \'a\'"', ['a']],
    ["trap 'a' EXIT", ['a']],
    ['bash <<EOF\na\nEOF', ['a']],
    ["sh <<< 'a; b'", ['a', 'b']],
    ["watch -n 1 'a'", ['a']],
  ])('%j contains %j', (src, expected) => {
    expect(cmds(src)).toEqual(expect.arrayContaining(expected));
  });

  it('four levels of sh -c are too deep and ask', () => {
    const src = 'bash -c "bash -c \'bash -c \\"bash -c a\\"\'"';
    const a = engine.analyze(src);
    expect(a.findings.map((f) => f.rule)).toContain('analysis:depth');
  });

  it('a parse error is a finding, never an exception', () => {
    expect(engine.analyze('a && ').findings.map((f) => f.rule)).toEqual(['analysis:parse-error']);
    expect(engine.analyze('x\0y').findings.map((f) => f.rule)).toEqual(['analysis:nul']);
    expect(engine.analyze('x'.repeat(70_000)).findings.map((f) => f.rule)).toEqual(['analysis:size']);
  });

  it('caches analyses by text', () => {
    expect(engine.analyze('ls -la')).toBe(engine.analyze('ls -la'));
  });
});

describe('the parser-free fast path agrees with mvdan/sh', () => {
  const parser = new ShellParser();
  const fast = new ShellAnalyzer(parser);
  const slow = new ShellAnalyzer(parser);
  slow.fastPath = false;
  const view = (a: CommandAnalysis) => ({
    commands: a.commands.map((c) => [
      c.words.map((w) => w.text),
      c.argv.map((w) => w.text),
      c.name,
      c.path,
      c.wrappers,
      c.assigns,
      c.dynamicArgs,
      c.depth,
    ]),
    findings: a.findings.map((f) => f.rule),
    redirections: a.redirections.length,
  });
  const word = fc.oneof(
    fc.constantFrom(
      'ls',
      'git',
      'status',
      'sudo',
      'env',
      'timeout',
      '5',
      'nice',
      '-n',
      'bash',
      '-c',
      'x',
      'rm',
      '-rf',
      '/',
      '/usr/bin/sudo',
      'A=1',
      'if',
      'then',
      'fi',
      'xargs',
      '-0',
      'find',
      '.',
      '-exec',
      'eval',
      'echo',
      '--',
      'dd',
      'of=/dev/sda',
      '%1',
      ':',
      'a.b',
      'c,d',
      'e+f',
      '@x',
    ),
    fc.stringMatching(/^[A-Za-z0-9_./:@%+,=-]{1,6}$/),
  );
  const sep = fc.constantFrom(' ', '  ', '\t', ' && ', '&&', ' || ', '; ', ';', ' ;', ' | ', ' & ', '\n');
  const line = fc
    .array(fc.tuple(word, sep), { minLength: 1, maxLength: 7 })
    .map((xs) => xs.map(([w, s]) => w + s).join(''));

  it('on random plain command lists', () => {
    fc.assert(
      fc.property(line, (src) => {
        expect(view(fast.analyze(src))).toEqual(view(slow.analyze(src)));
      }),
      { numRuns: 1500 },
    );
  }, 120_000); // 1,500 runs through the mvdan/sh parser: the slowest property in the unit suite

  it.each([
    'git status',
    'ls -la src && npm test',
    'a;b || c',
    '',
    'if true',
    'A=1 ls',
    'x;',
    'timeout 5 sudo id',
    'bash -c ls',
  ])('on %j', (src) => {
    expect(view(fast.analyze(src))).toEqual(view(slow.analyze(src)));
  });
});
