import type { Command } from 'commander';
import * as approvals from './approvals.js';
import * as cache from './cache.js';
import * as cancel from './cancel.js';
import * as checkpoints from './checkpoints.js';
import * as dashboard from './dashboard.js';
import * as devices from './devices.js';
import * as diff from './diff.js';
import * as doctor from './doctor.js';
import * as exec from './exec.js';
import * as forward from './forward.js';
import * as image from './image.js';
import * as jobs from './jobs.js';
import * as mcp from './mcp.js';
import * as models from './models.js';
import * as pair from './pair.js';
import * as policy from './policy.js';
import * as run from './run.js';
import * as secrets from './secrets.js';
import * as start from './start.js';
import * as status from './status.js';
import * as stop from './stop.js';
import * as timeline from './timeline.js';
import * as tray from './tray.js';
import * as undo from './undo.js';

/**
 * Every command module exports `register(program)`; the order here is the order in --help.
 * A command module imports only commander, ../common.js and type-only host modules at the top:
 * its implementation is imported inside its action, so --help and --version load nothing else
 * (tests/integration/cli-startup.test.ts checks what the built binary resolves).
 */
const COMMANDS: { register(program: Command): void }[] = [
  start,
  status,
  exec,
  jobs,
  forward,
  run,
  mcp,
  models,
  cancel,
  stop,
  approvals,
  tray,
  dashboard,
  timeline,
  diff,
  undo,
  checkpoints,
  policy,
  pair,
  devices,
  secrets,
  image,
  cache,
  doctor,
];

export function registerCommands(program: Command): void {
  for (const c of COMMANDS) c.register(program);
}
