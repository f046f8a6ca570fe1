import { describe, expect, it } from 'vitest';
import type { ShellWord } from '../../src/host/policy/index.js';
import { unwrap } from '../../src/host/policy/wrappers.js';

/** The wrapper tables follow the programs' real getopt strings (Debian 12), not a guess. */
const words = (line: string): ShellWord[] =>
  line.split(' ').map((text) => ({ text, dynamic: false, glob: false, params: [] }));
const runs = (line: string) => {
  const u = unwrap(words(line));
  return { cmd: u.argv.map((w) => w.text).join(' '), unknowable: !!u.unknowable, risky: !!u.risky };
};

describe('wrappers', () => {
  it.each([
    // optional arguments are only ever glued: the next word is the command
    ['env --default-signal sh -c id', 'sh -c id'],
    ['env --default-signal=INT sh', 'sh'],
    ['env --ignore-signal id', 'id'],
    ['xargs --replace sh -c id', 'sh -c id'],
    ['xargs --eof sh', 'sh'],
    ['xargs --max-lines sh', 'sh'],
    ['xargs -e sh', 'sh'],
    ['xargs -i sh', 'sh'],
    ['xargs -l sh', 'sh'],
    ['xargs -I {} sh', 'sh'],
    ['xargs -n 1 -P2 grep x', 'grep x'],
    // flags are flags
    ['ionice -t id', 'id'],
    ['ionice -c 3 -t id', 'id'],
    // required arguments, separate or glued, abbreviations of long options
    ['nice --adjustment 5 id', 'id'],
    ['nice --adj=5 id', 'id'],
    ['nice -n5 id', 'id'],
    ['nice -5 id', 'id'],
    ['timeout -k 1 -s KILL 5 id', 'id'],
    ['timeout --sig=KILL 5 id', 'id'],
    ['timeout --fore 5 id', 'id'],
    ['env -u HOME -i A=1 id', 'id'],
    ['env --unse HOME id', 'id'],
    ['stdbuf -o L -eL id', 'id'],
    ['/usr/bin/env nice timeout 3 id', 'id'],
  ])('%j runs %j', (line, cmd) => {
    expect(runs(line)).toMatchObject({ cmd, unknowable: false });
  });

  it.each([
    'env -S id',
    'env --split-string=id',
    'env --split id',
    'env --bogus id',
    'nice --bogus id',
    'timeout -x 5 id',
    'xargs -z id',
  ])('%j cannot be followed', (line) => {
    expect(runs(line).unknowable).toBe(true);
  });

  it.each(['./env ls', '/tmp/env ls', '/workspace/timeout 1 ls', 'bin/nice ls'])(
    "%j is the agent's own program",
    (line) => {
      expect(runs(line).cmd).toBe(line.replace(/^\S*\//, ''));
    },
  );

  it.each([
    'env -C /tmp ls',
    'env --chdir=/ ls',
    '/usr/bin/time -o x ls',
    'xargs -I{} ls',
    'xargs --replace ls',
    'xargs -a f ls',
  ])('%j is a wrapper option the agent must ask about', (line) => {
    expect(runs(line)).toMatchObject({ cmd: 'ls', risky: true });
  });
});
