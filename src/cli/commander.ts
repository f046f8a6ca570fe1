import { createRequire } from 'node:module';
import type * as Commander from 'commander';

/**
 * commander's classes, loaded as the CommonJS package it is: importing it as ESM goes through its
 * wrapper and Node's CJS export detection, ~5 ms more on every run of the CLI (measured with
 * `node -e` timings here). Types still come from `import type … from 'commander'`.
 */
const commander = createRequire(import.meta.url)('commander') as typeof Commander;

export const { Command, CommanderError, Option } = commander;
