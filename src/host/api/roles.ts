/**
 * Who may call what. Kept free of zod so the CLI can name the roles (`pair --role`) without
 * loading the schema library.
 *
 *   viewer   — read: status, task lists, timeline, pending approvals
 *   operator — viewer + start/cancel tasks, answer approvals
 *   admin    — everything: exec in the guest, devices, pairing codes, stopping the controller
 */
export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export const ROLE_RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

export function roleAllows(role: Role, minRole: Role): boolean {
  return ROLE_RANK[role] >= ROLE_RANK[minRole];
}
