import { z } from 'zod';

/**
 * The IPC protocol between VzDriver (parent) and runner.ts (the child started from the signed
 * node), as strict schemas: both sides validate what they receive, so a mismatch between a
 * driver and a runner from different builds fails with a message instead of doing something odd.
 *
 *   parent → child  start   { config }                     create + start the VM
 *                   listen  { port, hostPort }             sent only after 'started' (guest→host vsock
 *                                                          → 127.0.0.1:hostPort, the egress proxy)
 *                   connect { id, port, timeoutMs }        host→guest vsock stream
 *                   stop    { graceful, graceMs }          requestStop, forced after graceMs
 *   child → parent  started                                bridge.start resolved
 *                   state   { state, detail? }             the VM ended ('stopped' | 'error'); the
 *                                                          runner closes the bridge and exits next
 *                   connected { id } + the socket handle
 *                   connect-failed { id, message, timedOut }
 *                   failed  { phase, message }             create/start/listen threw
 */

const VzConfigSchema = z.strictObject({
  kernel: z.string(),
  initrd: z.string(),
  rootfs: z.string(),
  cmdline: z.string(),
  cpus: z.number().int().positive(),
  memoryMiB: z.number().int().positive(),
  shares: z.array(z.strictObject({ tag: z.string(), path: z.string(), readOnly: z.boolean() })),
  consoleLog: z.string(),
});

const port = z.number().int().min(0).max(0xffffffff);

export const ToRunner = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('start'), config: VzConfigSchema }),
  z.strictObject({ type: z.literal('listen'), port, hostPort: z.number().int().min(1).max(65535) }),
  z.strictObject({
    type: z.literal('connect'),
    id: z.number().int(),
    port,
    timeoutMs: z.number().int().positive(),
  }),
  z.strictObject({ type: z.literal('stop'), graceful: z.boolean(), graceMs: z.number().int().nonnegative() }),
]);
export type ToRunner = z.infer<typeof ToRunner>;

export const FromRunner = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('started') }),
  z.strictObject({
    type: z.literal('state'),
    state: z.enum(['stopped', 'error']),
    detail: z.string().optional(),
  }),
  z.strictObject({ type: z.literal('connected'), id: z.number().int() }),
  z.strictObject({
    type: z.literal('connect-failed'),
    id: z.number().int(),
    message: z.string(),
    timedOut: z.boolean(),
  }),
  z.strictObject({
    type: z.literal('failed'),
    phase: z.enum(['create', 'start', 'listen', 'stop', 'protocol']),
    message: z.string(),
  }),
]);
export type FromRunner = z.infer<typeof FromRunner>;

/**
 * How the runner exits, so the parent can tell a clean power-off from a failure even when the
 * 'state' message was lost: 0 = the VM stopped (guest power-off or a stop), 1 = VZ stopped it
 * with an error, 2 = create/start failed, 3 = the parent went away (VM force-stopped).
 */
export const RUNNER_EXIT = { stopped: 0, error: 1, startFailed: 2, orphaned: 3 } as const;
