import { z } from 'zod';

/**
 * The menu model: what the macOS menubar item (native/menubar/) and the Linux tray
 * (`cowork-vm tray`) show. The controller builds it (`menu.get` in the API contract); the
 * native parts only render it and send back the action of the entry the user chose, which
 * maps onto a contract method (approve/deny → approvals.answer, stop → stop, …). A surface
 * renders exactly this, so every surface shows the same thing, and entries the caller's role
 * may not use are left out by the builder, not hidden by the renderer.
 *
 * The wire form is JSON; native/menubar/Sources/CoworkMenubarCore/MenuModel.swift mirrors it
 * field for field (tests/unit/menubar-model-sync.test.ts keeps the two equal).
 */

export const MENU_MODEL_VERSION = 1;

/** What choosing an entry does. */
export const menuActionSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('approve'), approvalId: z.string().min(1) }),
  z.strictObject({ kind: z.literal('deny'), approvalId: z.string().min(1) }),
  z.strictObject({ kind: z.literal('open-dashboard') }),
  z.strictObject({ kind: z.literal('stop') }),
  z.strictObject({ kind: z.literal('start-workspace'), workspace: z.string().min(1) }),
  z.strictObject({ kind: z.literal('quit') }),
]);
export type MenuAction = z.infer<typeof menuActionSchema>;
export type MenuActionKind = MenuAction['kind'];

export interface MenuSeparator {
  type: 'separator';
}
/** Text that cannot be chosen (a heading, a detail line). */
export interface MenuLabel {
  type: 'label';
  id: string;
  label: string;
}
export interface MenuActionItem {
  type: 'action';
  id: string;
  label: string;
  action: MenuAction;
  enabled: boolean;
}
export interface MenuSubmenu {
  type: 'submenu';
  id: string;
  label: string;
  items: MenuItem[];
}
export type MenuItem = MenuSeparator | MenuLabel | MenuActionItem | MenuSubmenu;

export const menuItemSchema: z.ZodType<MenuItem> = z.lazy(() =>
  z.discriminatedUnion('type', [
    z.strictObject({ type: z.literal('separator') }),
    z.strictObject({ type: z.literal('label'), id: z.string().min(1), label: z.string() }),
    z.strictObject({
      type: z.literal('action'),
      id: z.string().min(1),
      label: z.string(),
      action: menuActionSchema,
      enabled: z.boolean(),
    }),
    z.strictObject({
      type: z.literal('submenu'),
      id: z.string().min(1),
      label: z.string(),
      items: z.array(menuItemSchema),
    }),
  ]),
);

/** stopped: no controller runs; waiting: it runs and at least one approval is pending. */
export const MENU_STATES = ['stopped', 'running', 'waiting'] as const;
export type MenuState = (typeof MENU_STATES)[number];

export const menuStatusSchema = z.strictObject({
  state: z.enum(MENU_STATES),
  pendingApprovals: z.number().int().min(0),
  /** Short text next to the icon ("cowork-vm", "cowork-vm · 2 waiting"). */
  title: z.string(),
  /** Longer text: the workspace, the VM state, what waits. */
  tooltip: z.string(),
  /** The workspace this model is about, when a controller runs. */
  workspace: z.string().optional(),
});
export type MenuStatus = z.infer<typeof menuStatusSchema>;

export const menuModelSchema = z.strictObject({
  version: z.literal(MENU_MODEL_VERSION),
  status: menuStatusSchema,
  items: z.array(menuItemSchema),
});
export type MenuModel = z.infer<typeof menuModelSchema>;
