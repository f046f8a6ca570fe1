import { DbusCallError, type DbusConnection, type OutVariant, readVariant, variant } from '../dbus/index.js';
import type { MenuAction, MenuItem, MenuModel } from '../menu/model.js';

/**
 * The menu model rendered as a com.canonical.dbusmenu menu: the layout is derived from the model
 * alone, and a click comes back as the model's action. Item ids are integers on the wire; each model id keeps its integer for the tray's
 * life, so a panel that clicks an entry of an older layout still names the same entry (or one
 * that is gone, which does nothing).
 */

export const DBUSMENU_IFACE = 'com.canonical.dbusmenu';
export const MENU_PATH = '/MenuBar';
const DBUSMENU_VERSION = 3;

type Props = [string, OutVariant][];

export interface MenuNode {
  id: number;
  props: Props;
  children: MenuNode[];
  item?: MenuItem;
}

/** Model ids → stable dbusmenu ids (0 is the root). */
export class MenuIds {
  private readonly ids = new Map<string, number>();
  private next = 1;

  of(key: string): number {
    let id = this.ids.get(key);
    if (id === undefined) {
      id = this.next++;
      this.ids.set(key, id);
    }
    return id;
  }
}

/** dbusmenu labels use `_` to mark an access key; a literal one is written twice. */
export function menuLabel(text: string): string {
  return text.replace(/_/g, '__');
}

/** The model's items as a dbusmenu tree under root 0. Pure but for the id map it extends. */
export function menuTree(model: MenuModel, ids: MenuIds): MenuNode {
  const nodes = (items: MenuItem[], parent: string): MenuNode[] =>
    items.map((item, i) => {
      if (item.type === 'separator') {
        return {
          id: ids.of(`${parent}/separator:${i}`),
          props: [['type', variant('s', 'separator')]],
          children: [],
          item,
        };
      }
      const props: Props = [['label', variant('s', menuLabel(item.label))]];
      if (item.type === 'label') props.push(['enabled', variant('b', false)]);
      if (item.type === 'action') props.push(['enabled', variant('b', item.enabled)]);
      if (item.type === 'submenu') props.push(['children-display', variant('s', 'submenu')]);
      const children = item.type === 'submenu' ? nodes(item.items, item.id) : [];
      return { id: ids.of(item.id), props, children, item };
    });
  return { id: 0, props: [['children-display', variant('s', 'submenu')]], children: nodes(model.items, '') };
}

function find(node: MenuNode, id: number): MenuNode | undefined {
  if (node.id === id) return node;
  for (const c of node.children) {
    const hit = find(c, id);
    if (hit) return hit;
  }
  return undefined;
}

/** GetLayout's `(ia{sv}av)` for a node, `depth` levels down (-1: all). */
export function layoutOf(node: MenuNode, depth: number, names: string[]): unknown[] {
  const props = names.length === 0 ? node.props : node.props.filter(([k]) => names.includes(k));
  const children =
    depth === 0 ? [] : node.children.map((c) => variant('(ia{sv}av)', layoutOf(c, depth - 1, names)));
  return [node.id, props, children];
}

export class DbusMenu {
  private readonly ids = new MenuIds();
  private tree: MenuNode;
  private revision = 1;

  constructor(
    private readonly bus: DbusConnection,
    model: MenuModel,
    private readonly onAction: (action: MenuAction) => void,
  ) {
    this.tree = menuTree(model, this.ids);
    bus.export(MENU_PATH, this.iface());
  }

  update(model: MenuModel): void {
    this.tree = menuTree(model, this.ids);
    this.revision++;
    this.bus.emitSignal(MENU_PATH, DBUSMENU_IFACE, 'LayoutUpdated', 'ui', [this.revision, 0]);
  }

  /** A click on an enabled action entry runs its action; anything else is ignored. */
  private event(id: number, eventId: string): boolean {
    const node = find(this.tree, id);
    if (!node) return false;
    if (eventId === 'clicked' && node.item?.type === 'action' && node.item.enabled)
      this.onAction(node.item.action);
    return true;
  }

  private iface() {
    const node = (id: unknown): MenuNode | undefined =>
      typeof id === 'number' ? find(this.tree, id) : undefined;
    const names = (v: unknown): string[] => (Array.isArray(v) ? v.filter((n) => typeof n === 'string') : []);
    return {
      name: DBUSMENU_IFACE,
      methods: {
        GetLayout: {
          in: 'iias',
          out: 'u(ia{sv}av)',
          handler: ([parent, depth, props]: unknown[]) => {
            const n = node(parent);
            if (!n) throw unknownId(parent);
            return [this.revision, layoutOf(n, typeof depth === 'number' ? depth : -1, names(props))];
          },
        },
        GetGroupProperties: {
          in: 'aias',
          out: 'a(ia{sv})',
          handler: ([ids, props]: unknown[]) => {
            const wanted = names(props);
            const found = (Array.isArray(ids) ? ids : [])
              .map(node)
              .filter((n): n is MenuNode => n !== undefined);
            return [found.map((n) => layoutOf(n, 0, wanted).slice(0, 2))];
          },
        },
        GetProperty: {
          in: 'is',
          out: 'v',
          handler: ([id, name]: unknown[]) => {
            const prop = node(id)?.props.find(([k]) => k === name);
            if (!prop) throw unknownId(id);
            return [prop[1]];
          },
        },
        Event: {
          in: 'isvu',
          out: '',
          handler: ([id, eventId]: unknown[]) => {
            if (!this.event(Number(id), String(eventId))) throw unknownId(id);
            return [];
          },
        },
        EventGroup: {
          in: 'a(isvu)',
          out: 'ai',
          handler: ([events]: unknown[]) => {
            const errors: number[] = [];
            for (const e of Array.isArray(events) ? events : []) {
              const [id, eventId, data] = e as [number, string, unknown];
              readVariant(data); // the data is not used by any of our entries
              if (!this.event(id, eventId)) errors.push(id);
            }
            return [errors];
          },
        },
        AboutToShow: { in: 'i', out: 'b', handler: () => [false] },
        AboutToShowGroup: {
          in: 'ai',
          out: 'aiai',
          handler: ([ids]: unknown[]) => [[], (Array.isArray(ids) ? ids : []).filter((id) => !node(id))],
        },
      },
      properties: {
        Version: { type: 'u', get: () => DBUSMENU_VERSION },
        TextDirection: { type: 's', get: () => 'ltr' },
        Status: { type: 's', get: () => 'normal' },
        IconThemePath: { type: 'as', get: () => [] },
      },
      signals: {
        ItemsPropertiesUpdated: 'a(ia{sv})a(ias)',
        LayoutUpdated: 'ui',
        ItemActivationRequested: 'iu',
      },
    };
  }
}

function unknownId(id: unknown): Error {
  return new DbusCallError('org.freedesktop.DBus.Error.InvalidArgs', `no menu item ${String(id)}`);
}
