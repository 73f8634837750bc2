// Tables: the list, and one table's schema and first rows (keyset pages of /records).

import { api, qs } from './api.js';
import { cell, confirmDialog, errorBox, h, noticeBox, num, replace, tableWrap, when } from './dom.js';

const ROWS_PAGE = 50;

export async function renderTables(main, ctx) {
  const body = h('div', { 'aria-busy': 'true' }, h('p', { class: 'muted' }, 'Loading tables…'));
  replace(main,
    h('div', { class: 'page-head' },
      h('h1', {}, 'Tables'),
      ctx.can('admin') ? h('a', { class: 'btn', href: '#/new' }, 'New table from a file') : null),
    body);
  let res;
  try {
    res = await ctx.api('/v1/tables');
  } catch (e) {
    if (!ctx.signal.aborted) replace(body, errorBox(e, 'The tables could not be loaded'));
    return;
  }
  if (ctx.signal.aborted) return;
  body.removeAttribute('aria-busy');
  if (!res.data.length) {
    replace(body, h('div', { class: 'empty' },
      h('p', {}, 'No tables yet.'),
      ctx.can('admin')
        ? h('p', {}, 'Create one from a file: ', h('a', { href: '#/new' }, 'New import'), ' proposes a schema from its first rows.')
        : h('p', {}, 'An admin creates tables; ask one, or use an admin key.')));
    return;
  }
  const rows = res.data.map((t) => h('tr', {},
    h('th', { scope: 'row', 'data-label': 'Table' }, h('a', { href: `#/tables/${encodeURIComponent(t.name)}` }, t.name)),
    h('td', { 'data-label': 'Columns' }, t.columns.map((c, i) => [i ? ', ' : '', c.name]).flat()),
    h('td', { 'data-label': 'Key' }, t.primary_key.join(', ') || h('span', { class: 'muted' }, 'none')),
    h('td', { 'data-label': 'In the database' }, h('code', {}, t.database_table)),
    h('td', { 'data-label': 'Created' }, when(t.created_at))));
  replace(body, tableWrap('Tables', h('table', { class: 'list tables stack' },
    h('caption', { class: 'visually-hidden' }, 'Tables of the workspace'),
    h('thead', {}, h('tr', {}, ['Table', 'Columns', 'Key', 'In the database', 'Created'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, rows))));
}

export async function renderTable(main, ctx, name) {
  const path = `/v1/tables/${encodeURIComponent(name)}`;
  replace(main, h('p', { class: 'muted' }, 'Loading the table…'));
  let t;
  try {
    t = await ctx.api(path);
  } catch (e) {
    if (ctx.signal.aborted) return;
    replace(main, h('h1', {}, name), errorBox(e, e.status === 404 ? 'No such table' : 'The table could not be loaded'),
      h('p', {}, h('a', { href: '#/tables' }, 'Back to the tables')));
    return;
  }
  if (ctx.signal.aborted) return;
  const actionStatus = h('div', { tabindex: -1 });
  const records = h('section', { 'aria-labelledby': 'rows-title' });
  const del = ctx.can('admin') ? h('button', { type: 'button', class: 'btn danger', onclick: remove }, 'Delete table') : null;
  replace(main,
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' },
      h('a', { href: '#/tables' }, 'Tables'), ' › ', h('span', { 'aria-current': 'page' }, t.name)),
    h('div', { class: 'page-head' },
      h('h1', {}, t.name),
      h('div', { class: 'actions' },
        ctx.can('member') ? h('a', { class: 'btn primary', href: `#/new${qs({ table: t.name })}` }, 'Import into this table') : null,
        h('a', { class: 'btn', href: `#/imports${qs({ table: t.name })}` }, 'Its imports'),
        del)),
    actionStatus,
    h('dl', { class: 'meta inline' },
      h('dt', {}, 'Rows'), h('dd', { id: 'row-count' }, num(t.row_count)),
      h('dt', {}, 'Key'), h('dd', {}, t.primary_key.join(', ') || 'none'),
      h('dt', {}, 'In the database'), h('dd', {}, h('code', {}, t.database_table)),
      h('dt', {}, 'Created'), h('dd', {}, when(t.created_at))),
    h('section', { 'aria-labelledby': 'schema-title' },
      h('h2', { id: 'schema-title' }, 'Schema'),
      tableWrap('Schema', h('table', { class: 'list schema stack' },
        h('caption', { class: 'visually-hidden' }, `Columns of ${t.name}`),
        h('thead', {}, h('tr', {}, ['Column', 'Type', 'Required', 'Unique', 'Constraints'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, t.columns.map((c) => h('tr', {},
          h('th', { scope: 'row', 'data-label': 'Column' }, h('code', {}, c.name), t.primary_key.includes(c.name) ? h('span', { class: 'tag' }, 'key') : null),
          h('td', { 'data-label': 'Type' }, c.type),
          h('td', { 'data-label': 'Required' }, c.required ? 'yes' : 'no'),
          h('td', { 'data-label': 'Unique' }, c.unique ? 'yes' : 'no'),
          h('td', { 'data-label': 'Constraints' }, constraints(c) || h('span', { class: 'muted' }, '–')))))))),
    records);

  const previous = [];
  let cursor = null;
  async function loadRows() {
    let page;
    try {
      page = await ctx.api(`${path}/records${qs({ limit: ROWS_PAGE, cursor })}`);
    } catch (e) {
      if (ctx.signal.aborted) return;
      replace(records, h('h2', { id: 'rows-title' }, 'Rows'), errorBox(e, 'The rows could not be loaded'));
      return;
    }
    if (ctx.signal.aborted) return;
    const names = t.columns.map((c) => c.name);
    const first = previous.length * ROWS_PAGE;
    replace(records,
      h('h2', { id: 'rows-title' }, cursor ? 'Rows' : 'First rows'),
      page.data.length
        ? tableWrap('Rows', h('table', { class: 'list records' },
          h('caption', { class: 'visually-hidden' }, `Rows ${first + 1} to ${first + page.data.length} of ${t.name}`),
          h('thead', {}, h('tr', {}, names.map((n) => h('th', { scope: 'col' }, n)))),
          h('tbody', {}, page.data.map((r) => h('tr', {}, names.map((n) => h('td', {}, cell(r[n]))))))))
        : h('p', { class: 'empty' }, 'The table is empty.'),
      h('nav', { class: 'pager', 'aria-label': 'Pages of rows' },
        cursor ? h('button', { type: 'button', class: 'btn small', onclick: () => { cursor = previous.pop() ?? null; loadRows(); } }, '‹ Previous') : null,
        page.data.length ? h('span', { class: 'muted small' }, `Rows ${num(first + 1)}–${num(first + page.data.length)}`) : null,
        page.has_more ? h('button', { type: 'button', class: 'btn small', onclick: () => { previous.push(cursor); cursor = page.next_cursor; loadRows(); } }, 'Next ›') : null));
  }

  async function remove() {
    const ok = await confirmDialog({
      title: `Delete the table ${t.name}?`,
      message: `Its ${num(t.row_count)} rows are dropped from the database. This cannot be undone.`,
      confirm: 'Delete table',
      danger: true,
    });
    if (!ok) return;
    try {
      await api(path, { method: 'DELETE' });
      if (ctx.signal.aborted) return;
      replace(main, h('h1', {}, t.name), noticeBox(`The table ${t.name} was deleted.`),
        h('p', {}, h('a', { href: '#/tables' }, 'Back to the tables')));
    } catch (e) {
      replace(actionStatus, errorBox(e, 'The table could not be deleted'));
      actionStatus.focus();
    }
  }

  await loadRows();
}

function constraints(c) {
  const parts = [];
  if (c.values) parts.push(`one of ${c.values.join(', ')}`);
  if (c.min !== undefined && c.min !== null) parts.push(`≥ ${c.min}`);
  if (c.max !== undefined && c.max !== null) parts.push(`≤ ${c.max}`);
  if (c.min_length !== undefined && c.min_length !== null) parts.push(`at least ${c.min_length} characters`);
  if (c.max_length !== undefined && c.max_length !== null) parts.push(`at most ${c.max_length} characters`);
  if (c.pattern) parts.push(`matches ${c.pattern}`);
  if (c.default !== undefined && c.default !== null) parts.push(`default ${JSON.stringify(c.default)}`);
  return parts.join('; ');
}
