import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../config/index.js';
import { CoworkError } from '../errors.js';
import { locateSandbox } from '../sandbox/locate.js';
import { Timeline } from '../timeline/index.js';
import { snapshotOptions } from './from-config.js';
import { CheckpointStore } from './store.js';

/**
 * A workspace's checkpoint store, opened from its state dir the way `cowork-vm timeline` reads
 * the timeline: whether or not its sandbox runs (the store's lock keeps a running controller and
 * this process from writing at once). `record` appends to the workspace's timeline, if it has one.
 */
export async function openWorkspaceCheckpoints(opts: {
  workspace?: string;
  configFile?: string;
  env?: NodeJS.ProcessEnv;
}) {
  const loc = locateSandbox(opts.workspace, opts.env);
  if (!existsSync(join(loc.stateDir, 'checkpoints', 'records')))
    throw new CoworkError(
      'notFound',
      `no checkpoints yet for ${loc.workspace} — one is taken before every agent task (\`cowork-vm run\`) and every \`cowork-vm exec --context agent\``,
    );
  const { config } = loadConfig({ configFile: opts.configFile, workspace: loc.workspace, env: opts.env });
  const store = await CheckpointStore.open(loc.stateDir, loc.workspace, snapshotOptions(config.checkpoints));
  const timelineFile = join(loc.stateDir, 'timeline.db');
  const record = (event: Parameters<Timeline['record']>[1], taskId: string | null = null) => {
    if (!existsSync(timelineFile)) return;
    const tl = Timeline.open(timelineFile);
    try {
      tl.record(taskId, event);
    } finally {
      tl.close();
    }
  };
  return { store, workspace: loc.workspace, record };
}

/** The checkpoint a command means: the one named, or the newest. */
export function pickCheckpoint(store: CheckpointStore, id: string | undefined) {
  if (id) return store.get(id);
  const last = store.list().at(-1);
  if (!last) throw new CoworkError('notFound', 'no checkpoints yet — one is taken before every agent task');
  return last;
}
