// Building the page. Every value is put in as text (a text node or an attribute set through the
// DOM), never parsed as HTML: a key named `<img src=x onerror=alert(1)>` shows as those characters.

/** An element: `props` are attributes (`on…` ones are listeners), `children` nodes or text. */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      element.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (value === true) {
      element.setAttribute(name, '');
    } else {
      element.setAttribute(name, String(value));
    }
  }
  append(element, children);
  return element;
}

/** Appends children: nodes as they are, anything else as text; `null` and `false` skipped. */
export function append(element, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces an element's content. */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
}

/** A date for people: local time, to the minute; `—` for none. */
export function when(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/** A badge: a word whose colour repeats what the word says (never colour alone). */
export function badge(kind, text) {
  return h('span', { class: `badge ${kind}` }, text);
}

/**
 * A table whose cells carry their column's name, so that narrow screens show rows as cards. The
 * roles are explicit: a table styled `display: block` loses them in some browsers.
 */
export function table(caption, columns, rows) {
  return h('div', { class: 'table' },
    h('table', { role: 'table' },
      h('caption', {}, caption),
      h('thead', { role: 'rowgroup' }, h('tr', { role: 'row' },
        columns.map((c) => h('th', { scope: 'col', role: 'columnheader' }, c)))),
      h('tbody', { role: 'rowgroup' }, rows.map((cells) => h('tr', { role: 'row' },
        cells.map((cell, i) => h('td', { 'data-label': columns[i], role: 'cell' }, cell)))))));
}
