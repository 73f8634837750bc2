// The imports list: newest first, filters by status and table, cursor paging, and live
// progress on running imports from their event streams.

import { qs } from './api.js';
import {
  LIVE, STATUSES, bar, bytes, chip, errorBox, h, num, replace, setBar, tableWrap, when, words,
} from './dom.js';
import { watchImport } from './sse.js';

const PAGE = 25;
/** Filters that are groups of statuses. */
const GROUPS = {
  running: 'new,queued,processing,rolling_back',
  with_errors: 'partially_complete,failed,unsupported',
};

// Cursors of the pages before the current one, so "Newer" can step back.
let previousCursors = [];

export async function renderImports(main, ctx) {
  const status = ctx.params.get('status') || '';
  const table = ctx.params.get('table') || '';
  const cursor = ctx.params.get('cursor') || '';
  if (!cursor) previousCursors = [];

  const go = (params) => ctx.navigate(`#/imports${qs(params)}`);
  const statusSelect = h('select', { id: 'f-status', name: 'status' },
    h('option', { value: '' }, 'All statuses'),
    h('option', { value: 'running', selected: status === 'running' }, 'Running or waiting'),
    h('option', { value: 'with_errors', selected: status === 'with_errors' }, 'With errors or failed'),
    STATUSES.map((s) => h('option', { value: s, selected: status === s }, words(s))));
  const tableSelect = h('select', { id: 'f-table', name: 'table' },
    h('option', { value: '' }, 'All tables'),
    table ? h('option', { value: table, selected: true }, table) : null);
  const apply = () => {
    previousCursors = [];
    go({ status: statusSelect.value, table: tableSelect.value });
  };
  statusSelect.addEventListener('change', apply);
  tableSelect.addEventListener('change', apply);

  const filters = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter imports' },
    h('div', { class: 'field' }, h('label', { for: 'f-status' }, 'Status'), statusSelect),
    h('div', { class: 'field' }, h('label', { for: 'f-table' }, 'Table'), tableSelect),
    (status || table) ? h('button', { type: 'button', class: 'btn ghost small', onclick: () => go({}) }, 'Clear filters') : null);
  filters.addEventListener('submit', (e) => { e.preventDefault(); apply(); });

  const body = h('div', { id: 'imports-body', 'aria-busy': 'true' }, h('p', { class: 'muted' }, 'Loading imports…'));
  replace(main,
    h('div', { class: 'page-head' },
      h('h1', {}, 'Imports'),
      ctx.can('member') ? h('a', { class: 'btn primary', href: '#/new' }, 'New import') : null),
    filters, body);

  // The table filter lists the workspace's tables (a failure leaves just "All tables").
  ctx.api('/v1/tables').then((res) => {
    for (const t of res.data) {
      if (t.name !== table) tableSelect.append(h('option', { value: t.name }, t.name));
    }
  }).catch(() => {});

  const rows = new Map();
  const unwatch = new Map();
  let reloadTimer = null;
  ctx.signal.addEventListener('abort', () => clearTimeout(reloadTimer));

  const watch = (imp) => {
    if (unwatch.has(imp.id) || ctx.signal.aborted) return;
    unwatch.set(imp.id, watchImport(imp.id, (type, data) => {
      const row = rows.get(imp.id);
      if (!row) return;
      if (type === 'progress') updateRow(row, { ...row.imp, ...data });
      else if (type === 'end') updateRow(row, data);
      else if (type === 'closed') {
        const stop = unwatch.get(imp.id);
        unwatch.delete(imp.id);
        if (stop) stop();
      }
    }, { signal: ctx.signal }));
  };

  async function load() {
    const query = {
      limit: PAGE, cursor, table, status: GROUPS[status] || status,
    };
    let page;
    try {
      page = await ctx.api(`/v1/imports${qs(query)}`);
    } catch (e) {
      if (ctx.signal.aborted) return;
      replace(body, errorBox(e, 'The imports could not be loaded'));
      body.removeAttribute('aria-busy');
      return;
    }
    if (ctx.signal.aborted) return;
    for (const stop of unwatch.values()) stop();
    unwatch.clear();
    rows.clear();
    body.removeAttribute('aria-busy');
    if (!page.data.length) {
      replace(body, emptyState(ctx, status || table || cursor));
      return;
    }
    const tbody = h('tbody');
    for (const imp of page.data) {
      const row = makeRow(imp);
      rows.set(imp.id, row);
      tbody.append(row.tr);
      if (LIVE.has(imp.status)) watch(imp);
    }
    const table_ = h('table', { class: 'list imports stack' },
      h('caption', { class: 'visually-hidden' }, 'Imports, newest first'),
      h('thead', {}, h('tr', {},
        ['Import', 'File', 'Table', 'Status', 'Progress', 'Rows', 'Created'].map((c) => h('th', { scope: 'col' }, c)))),
      tbody);
    const pager = h('nav', { class: 'pager', 'aria-label': 'Pages of imports' },
      cursor ? h('a', { class: 'btn small', href: `#/imports${qs({ status, table })}`, onclick: () => { previousCursors = []; } }, '« Newest') : null,
      cursor ? h('button', {
        type: 'button', class: 'btn small',
        onclick: () => go({ status, table, cursor: previousCursors.pop() || '' }),
      }, '‹ Newer') : null,
      page.has_more ? h('button', {
        type: 'button', class: 'btn small',
        onclick: () => { previousCursors.push(cursor); go({ status, table, cursor: page.next_cursor }); },
      }, 'Older ›') : null);
    replace(body, tableWrap('Imports', table_), pager);
  }

  const scheduleReload = () => {
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(load, 400);
  };
  ctx.onWorkspaceEvent((type, ev) => {
    if (!ev || !ev.import_id) return;
    const row = rows.get(ev.import_id);
    if (row) {
      // A visible import changed (a rollback started elsewhere, say): follow it live.
      if (!unwatch.has(ev.import_id)) watch(row.imp);
    } else if (!cursor) {
      // Something new on the first page: show it.
      scheduleReload();
    }
  });

  // Leaving the page ends the subscription and the watches (through ctx.signal).
  await load();
}

function emptyState(ctx, filtered) {
  if (filtered) return h('p', { class: 'empty' }, 'No import matches these filters.');
  return h('div', { class: 'empty' },
    h('p', {}, 'No imports yet.'),
    ctx.can('member')
      ? h('p', {}, h('a', { href: '#/new' }, 'Start the first import'), ': drop a CSV, TSV, NDJSON or JSON file, pick or create a table, and watch it load.')
      : h('p', {}, 'Your key is a viewer key: imports started by others will show here.'));
}

function tablesOf(imp) {
  return (imp.tables || []).map((t) => t.table).join(', ') || '–';
}

function makeRow(imp) {
  const cells = {
    status: h('td', { 'data-label': 'Status' }),
    progress: h('td', { 'data-label': 'Progress', class: 'progress-cell' }),
    rows: h('td', { 'data-label': 'Rows', class: 'num' }),
  };
  const tr = h('tr', { dataset: { id: imp.id } },
    h('th', { scope: 'row', 'data-label': 'Import' },
      h('a', { href: `#/imports/${imp.id}`, 'aria-label': `Import number ${imp.number}` }, `#${imp.number}`)),
    h('td', { 'data-label': 'File', class: 'file' },
      imp.file_name || h('span', { class: 'muted' }, imp.source),
      imp.file_size ? h('span', { class: 'muted small' }, ` ${bytes(imp.file_size)}`) : null,
      imp.dry_run ? h('span', { class: 'tag' }, 'dry run') : null),
    h('td', { 'data-label': 'Table' }, tablesOf(imp)),
    cells.status, cells.progress, cells.rows,
    h('td', { 'data-label': 'Created' }, when(imp.created_at)));
  const row = { tr, cells, imp, barEl: null };
  updateRow(row, imp);
  return row;
}

function updateRow(row, imp) {
  const statusChanged = row.imp.status !== imp.status || !row.cells.status.firstChild;
  row.imp = imp;
  if (statusChanged) replace(row.cells.status, chip(imp.status));
  const live = LIVE.has(imp.status);
  if (!row.barEl) {
    row.barEl = bar(imp.progress, `Progress of import ${imp.number}`);
    row.rate = h('span', { class: 'rate muted small' });
    replace(row.cells.progress, row.barEl, row.rate);
  }
  setBar(row.barEl, imp.progress);
  row.rate.textContent = live && imp.rows_per_second
    ? `${num(Math.round(imp.rows_per_second))} rows/s${imp.eta_seconds ? ` · ${imp.eta_seconds} s left` : ''}`
    : live ? words(imp.step) : '';
  const c = imp.counts || {};
  replace(row.cells.rows,
    h('span', {}, num(c.processed)),
    c.invalid ? h('span', { class: 'invalid' }, ` · ${num(c.invalid)} invalid`) : null);
}
