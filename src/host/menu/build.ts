import { basename } from 'node:path';
import { METHODS } from '../api/contract.js';
import type { StatusInfo } from '../api/controller.js';
import { type Role, roleAllows } from '../api/roles.js';
import type { PendingApproval } from '../approvals/types.js';
import { escapeControl } from '../timeline/index.js';
import { MENU_MODEL_VERSION, type MenuItem, type MenuModel, type MenuState } from './model.js';

/**
 * The one builder of the menu model (model.ts): a pure function of what the controller knows,
 * so the menubar, the tray and `menu.get` show the same entries, and an entry the caller's
 * role may not use is never in the model (the renderers draw everything they get).
 */

export interface MenuInput {
  /** The controller's status; null when no controller runs for the workspace. */
  status: Pick<StatusInfo, 'workspace' | 'state' | 'vm' | 'tasks'> | null;
  pending: readonly PendingApproval[];
  /** Workspaces to offer to start, newest first (only used when stopped). */
  recentWorkspaces: readonly string[];
  role: Role;
  /** Whether the renderer can open the dashboard. */
  dashboard: boolean;
}

/** How many recent workspaces the menu offers. */
export const MAX_RECENT_WORKSPACES = 5;
/** A submenu title shows this much of the command; the submenu holds all of it. */
export const SHORT_COMMAND_CHARS = 48;
/** Detail lines are wrapped at this width, and at most this many lines are shown. */
export const DETAIL_LINE_CHARS = 80;
export const MAX_COMMAND_LINES = 40;

export function buildMenu(input: MenuInput): MenuModel {
  const { status, role } = input;
  const pending = status ? input.pending : [];
  const state = menuState(status, pending.length);
  const items: MenuItem[] = [
    { type: 'label', id: 'status', label: statusLine(state, status, pending.length) },
  ];
  if (pending.length > 0) {
    items.push({ type: 'separator' });
    const answer = roleAllows(role, METHODS['approvals.answer'].minRole);
    for (const p of pending) items.push(approvalSubmenu(p, answer));
  }
  items.push({ type: 'separator' });
  if (input.dashboard) {
    items.push(action('dashboard', 'Open dashboard', { kind: 'open-dashboard' }, status !== null));
  }
  if (status && roleAllows(role, METHODS.stop.minRole)) {
    items.push(action('stop', 'Stop sandbox', { kind: 'stop' }, status.state === 'running'));
  }
  if (!status && roleAllows(role, 'admin')) {
    for (const ws of input.recentWorkspaces.slice(0, MAX_RECENT_WORKSPACES)) {
      items.push(
        action(`start:${ws}`, `Start ${show(basename(ws) || ws)} (${show(ws)})`, {
          kind: 'start-workspace',
          workspace: ws,
        }),
      );
    }
  }
  if (items.at(-1)?.type !== 'separator') items.push({ type: 'separator' });
  items.push(action('quit', 'Quit', { kind: 'quit' }));
  return {
    version: MENU_MODEL_VERSION,
    status: {
      state,
      pendingApprovals: pending.length,
      title: pending.length > 0 ? `cowork-vm · ${pending.length} waiting` : 'cowork-vm',
      tooltip: tooltip(state, status, pending),
      ...(status ? { workspace: status.workspace } : {}),
    },
    items,
  };
}

function menuState(status: MenuInput['status'], pending: number): MenuState {
  if (!status || status.state === 'stopped' || status.state === 'crashed') return 'stopped';
  return pending > 0 ? 'waiting' : 'running';
}

function statusLine(state: MenuState, status: MenuInput['status'], pending: number): string {
  if (!status) return 'Stopped';
  const ws = show(basename(status.workspace) || status.workspace);
  if (state === 'stopped') return `Stopped (${status.state}) · ${ws}`;
  if (state === 'waiting') return `Waiting (${pending} pending) · ${ws}`;
  if (status.state !== 'running') return `${capitalise(status.state)} · ${ws}`;
  return `Running · ${ws}`;
}

function tooltip(state: MenuState, status: MenuInput['status'], pending: readonly PendingApproval[]): string {
  if (!status) return 'No sandbox is running';
  const lines = [show(status.workspace), `VM ${status.state} (${status.vm.driver}, ${status.vm.accel})`];
  if (status.tasks.running > 0) lines.push(`${status.tasks.running} task(s) running`);
  if (state === 'waiting') {
    lines.push(`${pending.length} approval(s) waiting:`);
    for (const p of pending.slice(0, 3)) lines.push(`  ${shortSubject(p)}`);
  }
  return lines.join('\n');
}

function approvalSubmenu(p: PendingApproval, mayAnswer: boolean): MenuItem {
  const id = `approval:${p.id}`;
  const label = (key: string, text: string): MenuItem => ({ type: 'label', id: `${id}:${key}`, label: text });
  const items: MenuItem[] = [];
  const what = p.command ?? (p.input === undefined ? p.tool : jsonText(p.input));
  wrap(show(what)).forEach((line, i) => {
    items.push(label(`command:${i}`, `${i === 0 ? (p.command ? 'Command: ' : 'Input: ') : '  '}${line}`));
  });
  if (p.cwd !== undefined) items.push(label('cwd', `Folder: ${show(p.cwd)}`));
  items.push(label('risk', `Risk: ${p.risk} · context: ${p.context} · tool: ${show(p.tool)}`));
  if (p.taskId !== undefined) items.push(label('task', `Task: ${show(p.taskId)}`));
  p.reasons.forEach((r, i) => {
    items.push(label(`why:${i}`, `${i === 0 ? 'Why: ' : '  '}${show(r)}`));
  });
  if (mayAnswer) {
    items.push({ type: 'separator' });
    items.push(action(`${id}:approve`, 'Approve', { kind: 'approve', approvalId: p.id }));
    items.push(action(`${id}:deny`, 'Deny', { kind: 'deny', approvalId: p.id }));
  }
  return { type: 'submenu', id, label: shortSubject(p), items };
}

/** "shell: rm -rf build — task t-12": what waits, in one short line. */
export function shortSubject(p: PendingApproval): string {
  const what = p.command ?? (p.input === undefined ? '' : jsonText(p.input));
  const oneLine = show(what.replace(/\s+/g, ' ').trim());
  const short =
    oneLine.length > SHORT_COMMAND_CHARS ? `${oneLine.slice(0, SHORT_COMMAND_CHARS - 1)}…` : oneLine;
  const task = p.taskId !== undefined ? ` — task ${show(p.taskId)}` : '';
  return `${show(p.tool)}${short ? `: ${short}` : ''}${task}`;
}

/** The full text in lines of at most DETAIL_LINE_CHARS, at most MAX_COMMAND_LINES of them. */
function wrap(text: string): string[] {
  const lines: string[] = [];
  for (let i = 0; i < text.length; i += DETAIL_LINE_CHARS) lines.push(text.slice(i, i + DETAIL_LINE_CHARS));
  if (lines.length <= MAX_COMMAND_LINES) return lines.length > 0 ? lines : [''];
  const shown = lines.slice(0, MAX_COMMAND_LINES - 1);
  const rest = text.length - shown.length * DETAIL_LINE_CHARS;
  return [...shown, `… ${rest} more characters (see \`cowork-vm approvals\`)`];
}

function action(
  id: string,
  label: string,
  act: Extract<MenuItem, { type: 'action' }>['action'],
  enabled = true,
): MenuItem {
  return { type: 'action', id, label, action: act, enabled };
}

/** Text from the agent or the guest: control characters made visible, so nothing hides in a label. */
function show(s: string): string {
  return escapeControl(s);
}

function capitalise(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function jsonText(v: unknown): string {
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}
