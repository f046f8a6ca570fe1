import { z } from 'zod';
import type { Clock } from '../control/events.js';
import { recordSafely, type SecurityRecorder } from '../control/events.js';
import type { Role } from '../control/protocol.js';
import type { ControlStore, DeviceRecord } from '../control/store.js';
import { CoworkError } from '../errors.js';
import { FixedWindowLimiter } from './rate-limit.js';

/**
 * Who may use a messaging channel, decided in one place for every channel:
 *  - pairing (default): users paired with `/pair CODE` (a code from `cowork-vm pair`) and, if
 *    listed, allowlisted ids; anyone else may only send /pair.
 *  - allowlist: only the listed user ids; /pair is refused.
 *  - open: anyone, as a viewer unless paired; needs `openConfirmed` and warns at every start.
 * Everything a channel does runs in the `gateway` policy context.
 */
export const channelSecuritySchema = z.strictObject({
  mode: z.enum(['pairing', 'allowlist', 'open']).default('pairing'),
  allowlist: z.array(z.union([z.number().int(), z.string().regex(/^-?\d+$/)]).transform(String)).default([]),
  /** Role granted to allowlisted users (paired users get the role of their pairing code). */
  allowlistRole: z.enum(['viewer', 'operator', 'admin']).default('operator'),
  openConfirmed: z.boolean().default(false),
  /** Role of unknown users in open mode. */
  openRole: z.enum(['viewer', 'operator', 'admin']).default('viewer'),
  rateLimitPerMinute: z.number().int().min(1).max(600).default(30),
});
export type ChannelSecurityInput = z.input<typeof channelSecuritySchema>;
export type ChannelSecurity = z.infer<typeof channelSecuritySchema>;

export interface ChannelUser {
  role: Role;
  /** How the user got in: a paired device record, the allowlist, or open mode. */
  via: 'paired' | 'allowlist' | 'open';
  device?: DeviceRecord;
}

export class ChannelAccess {
  readonly security: ChannelSecurity;
  private readonly limiter: FixedWindowLimiter;

  constructor(
    readonly channel: string,
    security: ChannelSecurityInput,
    private readonly store: ControlStore,
    private readonly clock: Clock,
    private readonly recorder?: SecurityRecorder,
  ) {
    const parsed = channelSecuritySchema.safeParse(security);
    if (!parsed.success) {
      throw new CoworkError('invalidArgument', `channels.${channel}: ${z.prettifyError(parsed.error)}`);
    }
    this.security = parsed.data;
    if (this.security.mode === 'open' && !this.security.openConfirmed) {
      throw new CoworkError(
        'invalidArgument',
        `channels.${channel}.mode is "open" (anyone can talk to the agent): also set openConfirmed = true to mean it`,
      );
    }
    if (this.security.mode === 'allowlist' && this.security.allowlist.length === 0) {
      throw new CoworkError(
        'invalidArgument',
        `channels.${channel}.allowlist is empty while mode = "allowlist"`,
      );
    }
    this.limiter = new FixedWindowLimiter(this.security.rateLimitPerMinute, 60_000, clock);
  }

  /** The user's standing, or undefined for a stranger (who may only pair, in pairing mode). */
  lookup(userId: string): ChannelUser | undefined {
    const { mode, allowlist, allowlistRole, openRole } = this.security;
    if (mode === 'allowlist')
      return allowlist.includes(userId) ? { role: allowlistRole, via: 'allowlist' } : undefined;
    const device = this.store.findChannelUser(this.channel, userId);
    if (device) return { role: device.role, via: 'paired', device };
    if (allowlist.includes(userId)) return { role: allowlistRole, via: 'allowlist' };
    if (mode === 'open') return { role: openRole, via: 'open' };
    return undefined;
  }

  /** Counts a message; false once the user exceeded the per-minute limit. Records the first refusal of a window. */
  admit(userId: string): boolean {
    const { allowed, firstRefusal } = this.limiter.hit(userId);
    if (firstRefusal)
      this.refused(userId, `rate limit of ${this.security.rateLimitPerMinute} messages per minute`);
    return allowed;
  }

  get pairingEnabled(): boolean {
    return this.security.mode !== 'allowlist';
  }

  /** Redeems a code for this user: the per-user lockout (5 wrong codes → 15 minutes) and the host-wide pairing budgets of the store apply. */
  pair(userId: string, code: string, name: string): DeviceRecord {
    if (!this.pairingEnabled) throw new CoworkError('denied', 'this bot only accepts allowlisted users');
    return this.store.redeemPairingCode({
      code,
      identity: `${this.channel}:${userId}`,
      name,
      channel: this.channel,
      channelUser: userId,
    }).device;
  }

  /** Operators and admins who should hear about new approvals (paired or allowlisted). */
  notifiableUsers(minRole: (role: Role) => boolean): string[] {
    const ids = new Set<string>();
    if (this.security.mode !== 'allowlist') {
      for (const d of this.store.listDevices()) {
        if (d.channel === this.channel && d.channelUser && minRole(d.role)) ids.add(d.channelUser);
      }
    }
    if (minRole(this.security.allowlistRole)) for (const id of this.security.allowlist) ids.add(id);
    return [...ids];
  }

  refused(userId: string, reason: string): void {
    recordSafely(this.recorder, { type: 'channel.refused', channel: this.channel, user: userId, reason });
  }

  /** Call at every start: open mode is loud on purpose. */
  announceStart(logger: { warn(m: string): void }): void {
    if (this.security.mode !== 'open') return;
    logger.warn(
      `cowork-vm ${this.channel} channel is in OPEN mode: anyone who finds the bot can use it as '${this.security.openRole}'.`,
    );
    recordSafely(this.recorder, { type: 'channel.open_mode', channel: this.channel });
  }

  now(): number {
    return this.clock.now();
  }
}
