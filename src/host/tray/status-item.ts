import type { DbusConnection } from '../dbus/index.js';
import type { MenuState, MenuStatus } from '../menu/model.js';
import { MENU_PATH } from './dbusmenu.js';

/**
 * The tray icon: an org.kde.StatusNotifierItem whose properties follow the menu model's status
 * (Status Active / NeedsAttention while an approval waits / Passive when stopped) and whose
 * menu is the dbusmenu at MENU_PATH. ItemIsMenu: a click opens the menu, nothing else.
 */

export const SNI_IFACE = 'org.kde.StatusNotifierItem';
export const SNI_PATH = '/StatusNotifierItem';

export const SNI_STATUS: Record<MenuState, 'Active' | 'NeedsAttention' | 'Passive'> = {
  running: 'Active',
  waiting: 'NeedsAttention',
  stopped: 'Passive',
};

/** Icon names from the freedesktop naming spec, so every icon theme has them. */
const ICONS: Record<MenuState, string> = {
  running: 'utilities-terminal',
  waiting: 'dialog-warning',
  stopped: 'media-playback-stop',
};

export class StatusItem {
  private status: MenuStatus;

  constructor(
    private readonly bus: DbusConnection,
    status: MenuStatus,
  ) {
    this.status = status;
    const noop = { handler: () => [] };
    bus.export(SNI_PATH, {
      name: SNI_IFACE,
      methods: {
        ContextMenu: { in: 'ii', ...noop },
        Activate: { in: 'ii', ...noop },
        SecondaryActivate: { in: 'ii', ...noop },
        Scroll: { in: 'is', ...noop },
      },
      properties: {
        Category: { type: 's', get: () => 'ApplicationStatus' },
        Id: { type: 's', get: () => 'cowork-vm' },
        Title: { type: 's', get: () => this.status.title },
        Status: { type: 's', get: () => SNI_STATUS[this.status.state] },
        WindowId: { type: 'i', get: () => 0 },
        IconName: { type: 's', get: () => ICONS[this.status.state] },
        IconPixmap: { type: 'a(iiay)', get: () => [] },
        OverlayIconName: { type: 's', get: () => '' },
        AttentionIconName: { type: 's', get: () => ICONS.waiting },
        AttentionIconPixmap: { type: 'a(iiay)', get: () => [] },
        ToolTip: {
          type: '(sa(iiay)ss)',
          get: () => [ICONS[this.status.state], [], this.status.title, this.status.tooltip],
        },
        ItemIsMenu: { type: 'b', get: () => true },
        Menu: { type: 'o', get: () => MENU_PATH },
      },
      signals: {
        NewTitle: '',
        NewIcon: '',
        NewAttentionIcon: '',
        NewOverlayIcon: '',
        NewToolTip: '',
        NewStatus: 's',
      },
    });
  }

  /** Takes the new status and signals what changed. */
  update(next: MenuStatus): void {
    const prev = this.status;
    this.status = next;
    const emit = (member: string, signature?: string, body?: unknown[]) =>
      this.bus.emitSignal(SNI_PATH, SNI_IFACE, member, signature, body);
    if (prev.title !== next.title) emit('NewTitle');
    if (prev.state !== next.state) {
      emit('NewIcon');
      emit('NewStatus', 's', [SNI_STATUS[next.state]]);
    }
    if (prev.tooltip !== next.tooltip || prev.title !== next.title) emit('NewToolTip');
  }
}
