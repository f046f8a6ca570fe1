import type { Command } from 'commander';
import * as approvals from './approvals.js';
import * as doctor from './doctor.js';
import * as exec from './exec.js';
import * as image from './image.js';
import * as start from './start.js';
import * as status from './status.js';
import * as stop from './stop.js';
import * as timeline from './timeline.js';

/** Every command module exports `register(program)`; the order here is the order in --help. */
const COMMANDS: { register(program: Command): void }[] = [start, status, exec, stop, approvals, timeline, image, doctor];

export function registerCommands(program: Command): void {
  for (const c of COMMANDS) c.register(program);
}
