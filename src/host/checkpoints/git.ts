import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoworkError } from '../errors.js';

/**
 * The checkpoint store's git, isolated from everything the workspace (which the guest can write)
 * or the user's setup could put in its way. The store is a repository of our own in the sandbox's
 * state dir; the user's `.git` is never opened and nothing is ever written inside the workspace.
 *
 * Contract: git runs with an environment built from nothing (no inherited GIT_*, no pager, no
 * external diff), no system or global config (GIT_CONFIG_NOSYSTEM, GIT_CONFIG_GLOBAL=/dev/null,
 * HOME and XDG_CONFIG_HOME in an empty folder of the store), hooks pointed at /dev/null and
 * fsmonitor off, in the store's folder as cwd. The workspace is only ever a GIT_WORK_TREE for
 * `ls-files` (which reads `.gitignore` files as data and runs nothing); objects are written and
 * read by our own code (objects.ts), so `.gitattributes` filters, eol conversion and
 * working-tree-encoding never touch the bytes.
 */
export class StoreGit {
  readonly gitDir: string;
  readonly #home: string;

  constructor(readonly root: string) {
    this.gitDir = join(root, 'store.git');
    this.#home = join(root, 'home');
  }

  /** Creates the repository once; later calls do nothing. */
  async init(): Promise<void> {
    mkdirSync(this.#home, { recursive: true, mode: 0o700 });
    if (existsSync(join(this.gitDir, 'HEAD'))) return;
    mkdirSync(this.root, { recursive: true, mode: 0o700 });
    await this.run(['init', '--quiet', '--bare', this.gitDir], { noGitDir: true });
    // Not bare, so ls-files may take the workspace as GIT_WORK_TREE; never gc'd (objects stay loose).
    writeFileSync(
      join(this.gitDir, 'config'),
      '[core]\n\trepositoryformatversion = 0\n\tbare = false\n\tfilemode = true\n\tsymlinks = true\n' +
        '\thooksPath = /dev/null\n\tfsmonitor = false\n\tuntrackedCache = false\n\tautocrlf = false\n' +
        '[gc]\n\tauto = 0\n',
    );
    // Highest-precedence attributes: whatever a workspace .gitattributes says, nothing converts.
    mkdirSync(join(this.gitDir, 'info'), { recursive: true });
    writeFileSync(
      join(this.gitDir, 'info', 'attributes'),
      '* -text -eol -ident -filter -working-tree-encoding\n',
    );
  }

  env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    return {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: this.#home,
      XDG_CONFIG_HOME: this.#home,
      GIT_DIR: this.gitDir,
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_CONFIG_GLOBAL: '/dev/null',
      GIT_ATTR_NOSYSTEM: '1',
      GIT_TERMINAL_PROMPT: '0',
      GIT_OPTIONAL_LOCKS: '0',
      LC_ALL: 'C',
      ...extra,
    };
  }

  /** Runs git; resolves to stdout, rejects (unavailable) with stderr on a non-zero exit. */
  run(
    args: string[],
    opts: { env?: Record<string, string>; noGitDir?: boolean; maxBytes?: number; input?: string } = {},
  ): Promise<Buffer> {
    const env = this.env(opts.env);
    if (opts.noGitDir) delete env.GIT_DIR;
    const full = [
      '-c',
      'core.hooksPath=/dev/null',
      '-c',
      'core.fsmonitor=false',
      '-c',
      'diff.external=',
      '-c',
      'protocol.allow=never',
      ...args,
    ];
    return new Promise((resolve, reject) => {
      const child = spawn('git', full, {
        cwd: this.root,
        env,
        stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      });
      if (opts.input !== undefined) child.stdin?.end(opts.input);
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let size = 0;
      const max = opts.maxBytes ?? 512 * 1024 * 1024;
      child.stdout?.on('data', (c: Buffer) => {
        size += c.length;
        if (size <= max) out.push(c);
      });
      child.stderr?.on('data', (c: Buffer) => err.push(c));
      child.on('error', (e) =>
        reject(new CoworkError('unavailable', `git is needed for checkpoints: ${e.message}`, e)),
      );
      child.on('close', (code) => {
        if (code === 0) resolve(Buffer.concat(out));
        else
          reject(
            new CoworkError(
              'unavailable',
              `checkpoint store: git ${args[0]} failed (${code}): ${Buffer.concat(err).toString().trim()}`,
            ),
          );
      });
    });
  }
}
