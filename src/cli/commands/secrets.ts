import type { Command } from 'commander';
import { CoworkError } from '../../host/errors.js';
import { action, addExamples, printJson } from '../common.js';

/** Reads a value without echoing it (TTY), or all of stdin (pipe), trimming one trailing newline. */
async function readSecretValue(name: string): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const c of stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks)
      .toString('utf8')
      .replace(/\r?\n$/, '');
  }
  process.stderr.write(`value for ${name} (input hidden): `);
  stdin.setRawMode(true);
  stdin.setEncoding('utf8');
  stdin.resume();
  try {
    return await new Promise<string>((resolve, reject) => {
      let value = '';
      stdin.on('data', (s: string) => {
        for (const ch of s) {
          if (ch === '\r' || ch === '\n') return resolve(value);
          if (ch === '\u0003' || ch === '\u0004')
            return reject(new CoworkError('cancelled', 'nothing was stored'));
          if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
          else value += ch;
        }
      });
    });
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    stdin.removeAllListeners('data');
    process.stderr.write('\n');
  }
}

/** The keychain, loaded when a secrets command runs (it is a native addon). */
const secretsModule = () => import('../../host/secrets/index.js');

export function register(program: Command): void {
  const secrets = program
    .command('secrets')
    .description('Manage credentials in the OS keychain (the Anthropic API key, the Telegram bot token)');

  const set = secrets
    .command('set')
    .description('Store a secret in the OS keychain (prompts without echo; reads stdin when piped)')
    .argument('<name>', 'secret name, e.g. anthropic or telegram')
    .action(
      action(async (name: string) => {
        const { KeychainSecretStore, SECRET_NAME } = await secretsModule();
        const valid = SECRET_NAME.safeParse(name);
        if (!valid.success)
          throw new CoworkError(
            'invalidArgument',
            `invalid secret name "${name}": ${valid.error.issues[0]?.message}`,
          );
        const store = new KeychainSecretStore();
        // Reach the keychain before asking for the value.
        await store.list();
        const value = await readSecretValue(name);
        if (value.trim() === '') throw new CoworkError('invalidArgument', 'empty value — nothing was stored');
        await store.set(name, value);
        process.stdout.write(`stored ${name} in the OS keychain\n`);
      }),
    );
  addExamples(set, ['cowork-vm secrets set anthropic', 'printf %s "$KEY" | cowork-vm secrets set anthropic']);

  const rm = secrets
    .command('rm')
    .description('Remove a secret from the OS keychain')
    .argument('<name>', 'secret name')
    .action(
      action(async (name: string) => {
        const { KeychainSecretStore } = await secretsModule();
        const removed = await new KeychainSecretStore().remove(name);
        if (!removed)
          throw new CoworkError(
            'notFound',
            `no secret named ${name} — list them with \`cowork-vm secrets ls\``,
          );
        process.stdout.write(`removed ${name}\n`);
      }),
    );
  addExamples(rm, ['cowork-vm secrets rm telegram']);

  const ls = secrets
    .command('ls')
    .description('List the names of stored secrets (never their values)')
    .option('--json', 'print a JSON array of names')
    .action(
      action(async (flags: { json?: boolean }) => {
        const { KeychainSecretStore } = await secretsModule();
        const names = await new KeychainSecretStore().list();
        if (flags.json) return printJson(names);
        process.stdout.write(names.length === 0 ? 'no secrets stored\n' : `${names.join('\n')}\n`);
      }),
    );
  addExamples(ls, ['cowork-vm secrets ls', 'cowork-vm secrets ls --json']);
}
