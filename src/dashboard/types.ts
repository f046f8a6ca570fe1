/**
 * What the dashboard receives from the controller, as plain types. The browser build cannot load
 * zod or the host's modules; these mirror src/host/api/results.ts (the contract's result schemas)
 * and the `/api/session` and `/api/events` shapes of src/host/dashboard. Data from the server is
 * shown, never trusted: every field is rendered as text.
 */
export type Role = 'viewer' | 'operator' | 'admin';

export interface Session {
  deviceId: string;
  deviceName: string;
  role: Role;
  csrf: string;
  /** The contract methods this session may call: a control for any other is left out. */
  methods: string[];
}

export interface PendingApproval {
  id: string;
  taskId?: string;
  tool: string;
  command?: string;
  input?: unknown;
  cwd?: string;
  risk: string;
  context: string;
  reasons: string[];
  createdAt: number;
  expiresAt: number;
}

export interface TimelineEntry {
  id: number;
  ts: number;
  taskId: string | null;
  type: string;
  data: Record<string, unknown>;
}

export interface TaskSummary {
  id: string;
  title: string;
  status: string;
  context: string;
  origin: string;
  createdAt: string;
  finishedAt?: string;
  outcome?: string;
  summary?: string;
}

export interface Status {
  workspace: string;
  state: string;
  pid: number;
  vm: {
    driver: string;
    accel: string;
    share: string;
    image: string;
    cpus: number;
    memoryMiB: number;
    bootMs?: number;
    startedAt?: string;
  };
  egress?: { listening: boolean; port?: number };
  pendingApprovals: number;
  tasks: { running: number };
  jobs?: { running: number };
  forwards?: { guestPort: number; hostPort: number; url: string }[];
  cache?: { name: string; sizeBytes: number; kind: string };
}

export interface Device {
  id: string;
  name: string;
  role: Role;
  channel: string;
  channelUser?: string;
  createdAt: number;
  lastSeenAt?: number;
  revokedAt?: number;
  revokedBy?: string;
}

/** The `task` events of /api/events (the contract's tasks.events). */
export type TaskEvent =
  | { taskId: string; type: 'text'; text: string }
  | { taskId: string; type: 'finished'; outcome: string; filesChanged: string[] };

export type VerdictKind = 'approve-once' | 'approve-task' | 'deny';
