// A small DOM builder shared by the panel's views: h('div', {class: 'x'}, child, ...).
// Attributes: a function is an event listener (`onclick` -> 'click'), `class` sets the class
// name, `true` an empty (present) attribute, `false`/undefined leaves it out; children may be
// nested arrays, and null/undefined/false children are skipped.

export type Child = Node | string | null | undefined | false;
export type Children = Child | Children[];

export function h(
  tag: string,
  attrs: Record<string, string | boolean | ((e: Event) => void) | undefined> = {},
  ...children: Children[]
): HTMLElement {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) {
      continue;
    }
    if (typeof value === 'function') {
      el.addEventListener(key.replace(/^on/, ''), value);
    } else if (key === 'class') {
      el.className = value as string;
    } else {
      el.setAttribute(key, value === true ? '' : value);
    }
  }
  for (const child of (children as unknown[]).flat(Infinity) as Child[]) {
    if (child !== null && child !== undefined && child !== false) {
      el.append(child);
    }
  }
  return el;
}
