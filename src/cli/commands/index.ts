import type { Command } from 'commander';
import * as approvals from './approvals.js';
import * as cancel from './cancel.js';
import * as devices from './devices.js';
import * as doctor from './doctor.js';
import * as exec from './exec.js';
import * as image from './image.js';
import * as pair from './pair.js';
import * as policy from './policy.js';
import * as run from './run.js';
import * as secrets from './secrets.js';
import * as start from './start.js';
import * as status from './status.js';
import * as stop from './stop.js';
import * as timeline from './timeline.js';

/** Every command module exports `register(program)`; the order here is the order in --help. */
const COMMANDS: { register(program: Command): void }[] = [
  start,
  status,
  exec,
  run,
  cancel,
  stop,
  approvals,
  timeline,
  policy,
  pair,
  devices,
  secrets,
  image,
  doctor,
];

export function registerCommands(program: Command): void {
  for (const c of COMMANDS) c.register(program);
}
