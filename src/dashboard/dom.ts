/**
 * Building elements. Every piece of text goes in through `textContent` or a text node, never
 * as markup: the dashboard shows commands and output an agent wrote, and none of it may become
 * HTML. There is deliberately no helper that takes HTML.
 */
export type Child = Node | string | number | null | undefined | false;

export interface Props {
  class?: string;
  text?: string;
  /** Event listeners: `on: { click: fn }`. */
  on?: Partial<Record<keyof HTMLElementEventMap, (ev: Event) => void>>;
  /** Attributes (strings) or boolean properties (`disabled`, `checked`, `hidden`, `required`). */
  [attr: string]: unknown;
}

const BOOLEAN_PROPS = new Set(['disabled', 'checked', 'hidden', 'required', 'selected', 'open']);

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = String(value);
    else if (key === 'text') el.textContent = String(value);
    else if (key === 'on') {
      for (const [ev, fn] of Object.entries(value as Record<string, (e: Event) => void>)) {
        el.addEventListener(ev, fn);
      }
    } else if (BOOLEAN_PROPS.has(key)) (el as unknown as Record<string, boolean>)[key] = value === true;
    else if (key === 'value') (el as unknown as { value: string }).value = String(value);
    else el.setAttribute(key, String(value));
  }
  append(el, ...children);
  return el;
}

export function append(el: Node, ...children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
}

/** Replaces an element's children. */
export function replace(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, ...children);
}

/** A label + value pair for a `<dl>`. */
export function field(label: string, value: Child, valueClass?: string): Node[] {
  return [h('dt', { text: label }), h('dd', { class: valueClass }, value ?? '—')];
}

/** A table whose cells carry their column name (the narrow layout shows it beside the value). */
export function table(columns: string[], rows: Child[][], caption?: string): HTMLTableElement {
  return h(
    'table',
    { class: 'grid' },
    caption ? h('caption', { text: caption }) : null,
    h('thead', {}, h('tr', {}, ...columns.map((c) => h('th', { scope: 'col', text: c })))),
    h('tbody', {}, ...rows.map((r) => tableRow(columns, r))),
  );
}

export function tableRow(columns: string[], cells: Child[]): HTMLTableRowElement {
  return h('tr', {}, ...cells.map((c, i) => h('td', { 'data-label': columns[i] ?? '' }, c)));
}

/** A one-line message in a live region: errors and results of an action. */
export function notice(kind: 'error' | 'ok' | 'info', text: string): HTMLElement {
  return h('p', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status', text });
}
