// DOM helpers and formatting shared by the pages. Elements are built with `h`, never from
// HTML strings, so text from the server or a file can never become markup.

/** Builds an element: h('a', {href: '#', class: 'x', onclick: f}, 'text', child, [more]). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value' || k === 'checked' || k === 'selected' || k === 'indeterminate') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces an element's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const numberFmt = new Intl.NumberFormat();

/** 12345 → "12,345"; null → "–". */
export function num(n) {
  return n === null || n === undefined ? '–' : numberFmt.format(n);
}

/** Bytes in a human unit. */
export function bytes(n) {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** Seconds as "1 h 2 min", "3 min 4 s", "5 s". */
export function duration(s) {
  if (s === null || s === undefined) return '–';
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

const relFmt = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
const absFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

/** A <time> element showing "3 min ago", the full date on hover. */
export function when(ts) {
  if (!ts) return h('span', { class: 'muted' }, '–');
  const d = new Date(ts);
  return h('time', { datetime: ts, title: absFmt.format(d) }, relative(d));
}

function relative(d) {
  const s = (d.getTime() - Date.now()) / 1000;
  const abs = Math.abs(s);
  if (abs < 45) return relFmt.format(Math.round(s), 'second');
  if (abs < 2700) return relFmt.format(Math.round(s / 60), 'minute');
  if (abs < 86400 * 1.5) return relFmt.format(Math.round(s / 3600), 'hour');
  if (abs < 86400 * 30) return relFmt.format(Math.round(s / 86400), 'day');
  return absFmt.format(d);
}

/** The full date and time of a timestamp. */
export function absolute(ts) {
  return ts ? absFmt.format(new Date(ts)) : '–';
}

/** Every status an import can have, in the order a filter lists them. */
export const STATUSES = [
  'new', 'queued', 'processing', 'complete', 'partially_complete', 'failed', 'cancelled',
  'rolling_back', 'rolled_back', 'unsupported',
];

/** Statuses whose import still changes by itself. */
export const LIVE = new Set(['new', 'queued', 'processing', 'rolling_back']);

/** "partially_complete" → "partially complete". */
export function words(s) {
  return String(s ?? '').replaceAll('_', ' ');
}

/** A status chip: colour and text, so colour is never the only cue. */
export function chip(status) {
  return h('span', { class: `chip s-${status}`, dataset: { status } }, words(status));
}

/** A progress bar with its text, e.g. "42 %". */
export function bar(value, label) {
  const v = Math.max(0, Math.min(100, Math.round(value ?? 0)));
  return h('span', { class: 'bar' },
    h('progress', { max: 100, value: v, 'aria-label': label }),
    h('span', { class: 'bar-text' }, `${v} %`));
}

/** Updates a bar built by `bar`. */
export function setBar(el, value) {
  const v = Math.max(0, Math.min(100, Math.round(value ?? 0)));
  el.querySelector('progress').value = v;
  el.querySelector('.bar-text').textContent = `${v} %`;
}

/** Says something to screen readers without moving focus. */
export function announce(message) {
  const live = document.getElementById('live');
  live.textContent = '';
  // A new text node after a tick is announced even when it repeats the previous one.
  setTimeout(() => { live.textContent = message; }, 50);
}

/** An error (from the API or the network) as an alert box. */
export function errorBox(err, prefix) {
  const message = err && err.message ? err.message : String(err);
  return h('div', { class: 'notice error', role: 'alert' },
    prefix ? h('strong', {}, `${prefix}: `) : null, message,
    err && err.code && err.code !== 'network' ? h('span', { class: 'muted' }, ` (${err.code})`) : null);
}

/** A success or information box. */
export function noticeBox(message, kind = 'ok') {
  return h('div', { class: `notice ${kind}`, role: 'status' }, message);
}

/**
 * Asks for confirmation in a modal dialog; resolves true when confirmed. The dialog traps
 * focus and Escape cancels (native <dialog> behaviour).
 */
export function confirmDialog({ title, message, confirm = 'Confirm', danger = false }) {
  return new Promise((resolve) => {
    const ok = h('button', { type: 'submit', value: 'ok', class: danger ? 'btn danger' : 'btn primary' }, confirm);
    const dialog = h('dialog', { class: 'dialog', 'aria-labelledby': 'dlg-title' },
      h('form', { method: 'dialog' },
        h('h2', { id: 'dlg-title' }, title),
        h('p', {}, message),
        h('div', { class: 'actions' },
          h('button', { type: 'submit', value: 'cancel', class: 'btn' }, 'Cancel'),
          ok)));
    dialog.addEventListener('close', () => {
      resolve(dialog.returnValue === 'ok');
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
    ok.focus();
  });
}

/** A table wrapped so that it scrolls sideways on narrow screens (and by keyboard). */
export function tableWrap(label, table) {
  return h('div', { class: 'table-wrap', role: 'region', 'aria-label': label, tabindex: 0 }, table);
}

/** Wraps a compact JSON rendering of a record for a table cell. */
export function recordText(row) {
  if (row === null || row === undefined) return '';
  if (typeof row !== 'object') return String(row);
  return Object.entries(row)
    .map(([k, v]) => `${k}: ${v === null ? '∅' : typeof v === 'object' ? JSON.stringify(v) : v}`)
    .join(' · ');
}

/** A cell value for display. */
export function cell(v) {
  if (v === null || v === undefined) return h('span', { class: 'null' }, 'null');
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}
