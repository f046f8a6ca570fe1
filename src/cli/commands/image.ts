import type { Command } from 'commander';
import { action, addExamples, printJson } from '../common.js';

interface BuildFlags {
  arch?: string;
  force?: boolean;
  verbose?: boolean;
  json?: boolean;
}

/** The image store of this host, loaded when an image command runs. */
async function imageStore() {
  const [{ hostPaths }, { ImageStore }] = await Promise.all([
    import('../../host/paths.js'),
    import('../../host/vm/images.js'),
  ]);
  return new ImageStore(hostPaths());
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(0)} MiB`;
}

export function register(program: Command): void {
  const image = program
    .command('image')
    .description('Build, list, remove, export and import guest images (cached by recipe hash)');
  addExamples(image, [
    'cowork-vm image build',
    'cowork-vm image build browser',
    'cowork-vm image ls',
    'cowork-vm image rm base',
    'cowork-vm image export base --arch arm64',
    'cowork-vm image import cowork-vm-image-base-arm64-0123456789ab.tar.gz',
  ]);
  registerBuild(image);
  registerList(image);
  registerRemove(image);
  registerExport(image);
  registerImport(image);
  registerWarm(image);
}

function registerWarm(image: Command): void {
  const warm = image
    .command('warm')
    .description(
      "Take the memory snapshot `start` restores when [vm] warm is on (same VM shape as this workspace's start)",
    )
    .argument('[name]', 'variant: base | browser (default: [vm] image)')
    .option('--json', 'print the snapshot as JSON')
    .action(
      action(async (name: string | undefined, flags: { json?: boolean }) => {
        const { warmImage } = await import('../../host/sandbox/warm.js');
        const t0 = Date.now();
        const info = await warmImage({
          image: name,
          onProgress: (l) => process.stderr.write(`${l}\n`),
        });
        if (flags.json) return printJson(info);
        process.stdout.write(
          `warm snapshot ${info.key}: ${mib(info.bytes)} in ${((Date.now() - t0) / 1000).toFixed(1)} s\n  ${info.file}\n`,
        );
      }),
    );
  addExamples(warm, ['cowork-vm image warm', 'cowork-vm image warm browser']);
}

function registerBuild(image: Command): void {
  const build = image
    .command('build')
    .description(
      'Build a guest image from Debian packages (mmdebstrap); skipped when the current recipe is built',
    )
    .argument('[name]', 'variant: base | browser', 'base')
    .option('--arch <arch>', 'amd64 | arm64 (default: this host)')
    .option('--force', 'rebuild even when an intact image of this recipe exists')
    .option('-v, --verbose', "show mmdebstrap's own log lines")
    .option('--json', 'print the resulting manifest as JSON')
    .action(action(buildImage));
  addExamples(build, [
    'cowork-vm image build',
    'cowork-vm image build browser --verbose',
    'cowork-vm image build base --force',
  ]);
}

async function buildImage(name: string, flags: BuildFlags): Promise<void> {
  const store = await imageStore();
  // With --json, stdout carries only the manifest: progress goes to stderr.
  const say = (l: string) => (flags.json ? process.stderr : process.stdout).write(`${l}\n`);
  const res = await store.build(name, {
    arch: flags.arch,
    force: flags.force,
    onProgress: (stage, msg) => say(`[${stage}] ${msg}`),
    onLog: flags.verbose ? (l) => say(`    ${l}`) : undefined,
  });
  if (flags.json) return printJson({ dir: res.dir, built: res.built, manifest: res.manifest });
  const m = res.manifest;
  const size = Object.values(m.files).reduce((n, f) => n + f.size, 0);
  say(
    res.built
      ? `built ${m.name} (${m.arch}, kernel ${m.kernelVersion}, ${mib(size)}) in ${m.totalSeconds} s → ${res.dir}\n` +
          `  stages: ${m.stages.map((s) => `${s.name} ${s.seconds} s`).join(' · ')}`
      : `${m.name} (${m.arch}) is up to date → ${res.dir}`,
  );
}

function registerList(image: Command): void {
  const ls = image
    .command('ls')
    .description('List built images and whether each matches the current recipe')
    .option('--json', 'print machine-readable JSON')
    .action(action(listImages));
  addExamples(ls, ['cowork-vm image ls', 'cowork-vm image ls --json']);
}

async function listImages(flags: { json?: boolean }): Promise<void> {
  const list = (await imageStore()).list();
  if (flags.json) return printJson(list);
  if (list.length === 0) return void process.stdout.write('no images built — run: cowork-vm image build\n');
  for (const i of list) {
    process.stdout.write(
      `${i.name.padEnd(8)} ${i.arch.padEnd(6)} ${i.hash.slice(0, 12)}  ${mib(i.sizeBytes).padStart(9)}  ${i.builtAt}  ${i.status}\n`,
    );
  }
}

function registerRemove(image: Command): void {
  const rm = image
    .command('rm')
    .description('Remove built images of a variant (or one image folder)')
    .argument('<name>', 'variant name, or an image folder from `image ls --json`')
    .option('--arch <arch>', 'only this architecture')
    .option('--stale', 'only images of an older recipe')
    .action(
      action(async (name: string, flags: { arch?: string; stale?: boolean }) => {
        const removed = (await imageStore()).remove(name, { arch: flags.arch, staleOnly: flags.stale });
        for (const d of removed) process.stdout.write(`removed ${d}\n`);
      }),
    );
  addExamples(rm, ['cowork-vm image rm base', 'cowork-vm image rm browser --stale']);
}

/** Progress of export/import on stderr: one updating line on a terminal, a line per file otherwise. */
function progressPrinter(): (p: { file: string; done: number; total: number }) => void {
  const tty = process.stderr.isTTY;
  return ({ file, done, total }) => {
    const pct = total === 0 ? 100 : Math.floor((done / total) * 100);
    const line = `  ${file}  ${String(pct).padStart(3)}%  ${mib(done)} / ${mib(total)}`;
    if (tty) process.stderr.write(`\r${line}${done === total ? '\n' : ''}`);
    else if (done === total) process.stderr.write(`${line}\n`);
  };
}

/** An AbortSignal that Ctrl-C fires, so a cancelled export/import removes its partial files. */
function interruptSignal(): AbortSignal {
  const ac = new AbortController();
  process.once('SIGINT', () => ac.abort());
  return ac.signal;
}

function registerExport(image: Command): void {
  const exp = image
    .command('export')
    .description('Write a built image (files + manifest) to one archive, to import on another host')
    .argument('[name]', 'variant: base | browser', 'base')
    .option('--arch <arch>', 'amd64 | arm64 (default: this host)')
    .option(
      '-o, --output <file>',
      'archive path (default: cowork-vm-image-<name>-<arch>-<hash>.tar.gz here; .tar = uncompressed)',
    )
    .option('--json', 'print {file, bytes, sha256, name, arch, recipeHash} as JSON')
    .action(
      action(async (name: string, flags: { arch?: string; output?: string; json?: boolean }) => {
        const store = await imageStore();
        const res = await store.exportArchive(name, {
          arch: flags.arch,
          output: flags.output,
          onProgress: progressPrinter(),
          signal: interruptSignal(),
        });
        if (flags.json) return printJson(res);
        process.stdout.write(
          `exported ${res.name} (${res.arch}, recipe ${res.recipeHash.slice(0, 12)}) → ${res.file}\n` +
            `  ${mib(res.bytes)}, sha256 ${res.sha256}\n` +
            `  on the other host: cowork-vm image import ${res.file.replace(/^.*\//, '')}\n`,
        );
      }),
    );
  addExamples(exp, [
    'cowork-vm image export base --arch arm64',
    'cowork-vm image export browser -o /tmp/b.tar.gz',
  ]);
}

function registerImport(image: Command): void {
  const imp = image
    .command('import')
    .description('Verify an archive from `image export` (sha256 of every file, recipe hash) and install it')
    .argument('<file>', 'archive written by cowork-vm image export')
    .option('--force', 'replace an installed image of the same recipe (the recipe hash is always checked)')
    .option('--json', 'print {dir, name, arch, recipeHash, installed} as JSON')
    .action(
      action(async (file: string, flags: { force?: boolean; json?: boolean }) => {
        const store = await imageStore();
        const res = await store.importArchive(file, {
          force: flags.force,
          onProgress: progressPrinter(),
          signal: interruptSignal(),
        });
        if (flags.json) return printJson(res);
        process.stdout.write(
          res.installed
            ? `imported ${res.name} (${res.arch}, recipe ${res.recipeHash.slice(0, 12)}) → ${res.dir}\n`
            : `${res.name} (${res.arch}, recipe ${res.recipeHash.slice(0, 12)}) is already installed and intact; kept ${res.dir} (--force replaces it)\n`,
        );
      }),
    );
  addExamples(imp, ['cowork-vm image import cowork-vm-image-base-arm64-0123456789ab.tar.gz']);
}
