import type { ShellWord } from './words.js';

/**
 * What the shell analysis produces, in a module of its own: the analyser (shell-analysis.ts)
 * and the structural checks it calls (shell-structure.ts) both speak it, and neither should
 * import the other to get it.
 */

/** One simple command found anywhere in a command line. */
export interface SimpleCommand {
  /** Words as written (quotes resolved), wrappers included. Empty for a bare assignment. */
  words: ShellWord[];
  /** The command that runs after looking through wrappers; argv[0] is a basename. */
  argv: ShellWord[];
  /** argv[0] as text ('' for a bare assignment or a dynamic name). */
  name: string;
  /** The running command's name as written, path included (`/tmp/ls`, `./gradlew`, `git`). */
  path: string;
  wrappers: string[];
  /** Variables set for (or by) this command: `A=1 cmd`, `env A=1 cmd`, `export A=1`. */
  assigns: string[];
  /** Receives arguments we cannot see (xargs, find -exec). */
  dynamicArgs: boolean;
  /** Depth of `sh -c` / `eval` nesting this command was found at (0 = top level). */
  depth: number;
  /** The words joined by spaces, for blockedPatterns and messages. */
  text: string;
  /** A wrapper whose options could not be followed (the command that runs is not known). */
  unknowable?: string;
  /** A wrapper option that writes or changes the directory (`time -o`, `env -C`, `xargs -I`). */
  wrapperRisk?: string;
  /** Found as a possible command inside a runner's arguments (`strace -f rm …`), not certain. */
  guessed?: boolean;
}

export interface Redirection {
  op: string;
  target: ShellWord;
  /** The file descriptor written before the operator (`2>`), if any. */
  fd?: string;
}

/** Something the analyser itself decided: unknowable constructs (ask) or structural dangers (deny). */
export interface Finding {
  effect: 'ask' | 'deny';
  rule: string;
  reason: string;
}

export interface CommandAnalysis {
  source: string;
  commands: SimpleCommand[];
  redirections: Redirection[];
  findings: Finding[];
  /** Why the command line is outside the subset of shell the analyser fully understands (agent/gateway: ask). */
  outside: string[];
}
