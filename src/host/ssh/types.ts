import type { Duplex } from 'node:stream';

/** Result of one command in the guest. */
export interface ExecResult {
  exitCode: number | null; // null when killed by a signal
  signal: string | null; // e.g. 'KILL', 'TERM'
  stdout: string;
  stderr: string;
  truncated: boolean; // output exceeded maxOutputBytes and was cut
  durationMs: number;
  timedOut: boolean;
}

export interface ExecOptions {
  cwd?: string; // default /workspace
  env?: Record<string, string>;
  stdin?: string | Buffer;
  timeoutMs?: number; // kills the remote process group, then resolves with timedOut: true
  maxOutputBytes?: number; // per stream; default 1 MiB
  signal?: AbortSignal; // abort kills the remote process group, then exec rejects CoworkError('cancelled')
  onStdout?: (chunk: Buffer) => void;
  onStderr?: (chunk: Buffer) => void;
  /** onStdout/onStderr see every byte, not only the first maxOutputBytes kept for the result. */
  streamPastCap?: boolean;
}

export interface FileStat {
  path: string;
  type: 'file' | 'directory' | 'symlink' | 'other';
  size: number;
  mode: number;
  mtimeMs: number;
}

export interface DirEntry {
  name: string;
  type: FileStat['type'];
  size: number;
}

/** One persistent SSH connection to a sandbox's guest; channels are multiplexed on it. */
export interface GuestSession {
  exec(command: string, opts?: ExecOptions): Promise<ExecResult>;
  readFile(path: string, opts?: { maxBytes?: number }): Promise<Buffer>;
  writeFile(path: string, data: string | Buffer, opts?: { mode?: number }): Promise<void>;
  stat(path: string): Promise<FileStat>;
  list(path: string): Promise<DirEntry[]>;
  /** A byte stream to a guest TCP port through the SSH connection (e.g. Chromium's DevTools). */
  forward(guestPort: number, guestHost?: string): Promise<Duplex>;
  readonly connected: boolean;
  close(): Promise<void>;
}
