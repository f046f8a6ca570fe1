#!/usr/bin/env node
// Thin launcher: the CLI is compiled TypeScript in dist/ (npm install builds it).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write('cowork-vm: not built yet — run `npm install` (or `npm run build`) in the cowork-vm folder.\n');
  process.exit(70);
}
await import(entry.href);
