import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { CoworkError } from '../../host/errors.js';
import { action, addExamples, intOption, locate, printJson } from '../common.js';

interface TimelineFlags {
  workspace?: string;
  json?: boolean;
  follow?: boolean;
  limit?: number;
  tasks?: boolean;
}

/**
 * Reads the workspace's timeline database directly (SQLite WAL allows a reader beside the
 * controller), so it works whether or not the sandbox is running. --follow polls for new rows.
 */
export function register(program: Command): void {
  const cmd = program
    .command('timeline')
    .description('Show what happened: tasks, commands, decisions, approvals, executions, budgets, VM events')
    .argument('[task]', 'a task id (default: all events)')
    .option('-w, --workspace <dir>', 'workspace folder (default: current directory)')
    .option('--json', 'print events as JSON (one array; with --follow, one JSON object per line)')
    .option('-f, --follow', 'keep printing new events as they happen (Ctrl-C to stop)')
    .option(
      '-n, --limit <n>',
      'show at most the last N events (default 200)',
      intOption('--limit', 1, 100_000),
    )
    .option('--tasks', 'list tasks instead of events')
    .action(
      action(async (taskId: string | undefined, flags: TimelineFlags) => {
        const loc = await locate(flags.workspace);
        const file = join(loc.stateDir, 'timeline.db');
        if (!existsSync(file)) {
          throw new CoworkError(
            'notFound',
            `no timeline yet for ${loc.workspace} — it starts with \`cowork-vm start\``,
          );
        }
        const { formatEvent, formatTask, Timeline } = await import('../../host/timeline/index.js');
        const tl = Timeline.open(file, { readonly: true });
        try {
          if (flags.tasks) {
            const tasks = tl.listTasks({ limit: flags.limit ?? 50 });
            if (flags.json) return printJson(tasks);
            for (const t of tasks) process.stdout.write(`${formatTask(t)}\n`);
            return;
          }
          if (taskId) tl.getTask(taskId); // throws notFound with a clear message
          const limit = flags.limit ?? 200;
          const last = tl.lastEventId();
          let events = tl.query({ taskId, afterId: Math.max(0, last - limit * 50), limit: 100_000 });
          events = events.slice(-limit);
          if (flags.json && !flags.follow) return printJson(events);
          const print = (e: (typeof events)[number]) =>
            process.stdout.write(flags.json ? `${JSON.stringify(e)}\n` : `${formatEvent(e)}\n`);
          events.forEach(print);
          if (!flags.follow) return;
          let after = events.at(-1)?.id ?? last;
          for (;;) {
            await new Promise((r) => setTimeout(r, 300));
            for (const e of tl.query({ taskId, afterId: after, limit: 1000 })) {
              print(e);
              after = e.id;
            }
          }
        } finally {
          if (!flags.follow) tl.close();
        }
      }),
    );
  addExamples(cmd, [
    'cowork-vm timeline',
    'cowork-vm timeline t-8f3k2a --json',
    'cowork-vm timeline --follow',
    'cowork-vm timeline --tasks',
  ]);
}
