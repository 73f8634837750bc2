// One import: its progress (live), counts per table, the tables it created (their schema and
// what was read as missing), actions (cancel, roll back), rejected rows summed up by column
// and code, page by page, and as a CSV download, and the timeline of its events.

import { api, downloadRejected, qs } from './api.js';
import {
  LIVE, absolute, announce, bar, bytes, chip, confirmDialog, duration, errorBox, h, noticeBox,
  num, recordText, replace, setBar, tableWrap, when, words,
} from './dom.js';
import { watchImport } from './sse.js';

const ERRORS_PAGE = 25;
/** Groups of rejected rows shown in the summary, largest first. */
const SUMMARY_GROUPS = 12;
const FINISHED = new Set(['complete', 'partially_complete', 'failed', 'cancelled']);

/** What a finished cancel or rollback left. */
const OUTCOME = {
  rolled_back: 'The import is rolled back: the rows it created are gone and the rows it changed are back as they were.',
  cancelled: 'The import is cancelled. Rows it wrote before stopping stay in the table; roll them back to remove them.',
  complete: 'The import finished before the cancel reached it: it is complete.',
  partially_complete: 'The import finished before the cancel reached it.',
};

const EVENT_TEXT = {
  'import.created': 'Created',
  'import.queued': 'Queued',
  'import.started': 'Started',
  'table.started': 'Table started',
  'import.warning': 'Warning',
  'table.cleaned_up': 'Table cleaned up',
  'table.finished': 'Table finished',
  'import.completed': 'Completed',
  'import.partially_completed': 'Completed with rejected rows',
  'import.failed': 'Failed',
  'import.cancelled': 'Cancelled',
  'import.unsupported': 'Unsupported format',
  'import.rolling_back': 'Rolling back',
  'import.rolled_back': 'Rolled back',
  'import.table_created': 'Table created',
  'import.columns_added': 'Columns added',
};

/** Steps worth more words than their name. */
const STEP_TEXT = {
  inferring: 'reading the whole file to choose the new table\'s column types',
};

export async function renderDetail(main, ctx, id) {
  const path = `/v1/imports/${encodeURIComponent(id)}`;
  const { signal } = ctx;
  replace(main, h('p', { class: 'muted' }, 'Loading the import…'));
  let imp;
  try {
    imp = await ctx.api(path);
  } catch (e) {
    if (signal.aborted) return undefined;
    replace(main, h('h1', {}, 'Import'), errorBox(e, e.status === 404 ? 'No such import' : 'The import could not be loaded'),
      h('p', {}, h('a', { href: '#/imports' }, 'Back to the imports')));
    return undefined;
  }
  if (signal.aborted) return undefined;

  const title = h('h1', {}, `Import #${imp.number}`);
  const statusEl = h('span', { id: 'import-status', 'aria-live': 'polite' });
  const meta = h('dl', { class: 'meta' });
  const progressBar = bar(imp.progress, 'Import progress');
  progressBar.id = 'import-progress';
  const progressText = h('p', { class: 'progress-text muted' });
  const actions = h('div', { class: 'actions', id: 'import-actions' });
  const actionStatus = h('div', { id: 'action-status', tabindex: -1 });
  const counts = h('div', { id: 'counts' });
  const created = h('div', { id: 'created-tables' });
  const errorsSection = h('section', { id: 'errors', 'aria-labelledby': 'errors-title' });
  const timeline = h('ol', { class: 'timeline', id: 'timeline' });

  replace(main,
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' },
      h('a', { href: '#/imports' }, 'Imports'), ' › ', h('span', { 'aria-current': 'page' }, `#${imp.number}`)),
    h('div', { class: 'page-head' }, title, statusEl),
    h('section', { class: 'card', 'aria-labelledby': 'progress-title' },
      h('h2', { id: 'progress-title' }, 'Progress'),
      progressBar, progressText, actions, actionStatus),
    h('section', { 'aria-labelledby': 'counts-title' }, h('h2', { id: 'counts-title' }, 'Rows'), counts),
    created,
    errorsSection,
    h('div', { class: 'columns' },
      h('section', { 'aria-labelledby': 'details-title' }, h('h2', { id: 'details-title' }, 'Details'), meta),
      h('section', { 'aria-labelledby': 'timeline-title' }, h('h2', { id: 'timeline-title' }, 'Timeline'), timeline)));

  let pending = false;
  let stopWatch = null;
  let lastEventId = null;
  const seenEvents = new Set();
  const errorsState = { cursor: null, previous: [], shownInvalid: -1, shownLive: null, summary: null, summaryFor: -1 };

  function show(next) {
    const before = imp;
    imp = next;
    if (before.status !== imp.status || !statusEl.firstChild) {
      replace(statusEl, chip(imp.status));
      if (before.status !== imp.status) {
        announce(`Import ${imp.number} is now ${words(imp.status)}`);
        // The notice of a cancel or rollback follows it to its outcome.
        if (pending && !LIVE.has(imp.status)) {
          replace(actionStatus, noticeBox(OUTCOME[imp.status] || `The import is now ${words(imp.status)}.`));
          pending = false;
        }
      }
    }
    setBar(progressBar, imp.progress);
    const live = LIVE.has(imp.status);
    const parts = [STEP_TEXT[imp.step] || words(imp.step)];
    if (imp.bytes_total) parts.push(`${bytes(imp.bytes_read)} of ${bytes(imp.bytes_total)} read`);
    if (imp.rows_per_second) parts.push(`${num(Math.round(imp.rows_per_second))} rows/s`);
    if (live && imp.eta_seconds) parts.push(`about ${duration(imp.eta_seconds)} left`);
    progressText.textContent = parts.join(' · ');
    renderCounts(counts, imp);
    if (imp.tables) {
      renderMeta(meta, imp);
      renderCreated(created, imp);
    }
    renderActions();
  }

  function renderActions() {
    const buttons = [];
    if (ctx.can('member') && ['new', 'queued', 'processing'].includes(imp.status)) {
      buttons.push(h('button', { type: 'button', class: 'btn', id: 'cancel', onclick: cancel }, 'Cancel import'));
    }
    const until = imp.rollback_available_until;
    if (ctx.can('admin') && FINISHED.has(imp.status) && !imp.dry_run && until && new Date(until) > new Date()) {
      buttons.push(h('button', { type: 'button', class: 'btn danger', id: 'rollback', onclick: rollback }, 'Roll back'));
    }
    const table = (imp.tables || [])[0];
    if (ctx.can('member') && table && FINISHED.has(imp.status) && imp.counts && imp.counts.invalid) {
      buttons.push(h('a', { class: 'btn', href: `#/new${qs({ table: table.table })}` }, 'Upload a corrected file'));
    }
    // Keep the focused button when nothing changed (progress events arrive many times a second).
    const key = buttons.map((b) => b.id || b.textContent).join('|');
    if (actions.dataset.key === key) return;
    actions.dataset.key = key;
    replace(actions, buttons);
  }

  async function cancel() {
    const ok = await confirmDialog({
      title: `Cancel import #${imp.number}?`,
      message: 'It stops at its next batch. Rows already written stay in the table (you can roll them back afterwards).',
      confirm: 'Cancel import',
      danger: true,
    });
    if (!ok) return;
    await act('cancel', 'Cancel requested; the import stops at its next batch.');
  }

  async function rollback() {
    const c = imp.counts || {};
    const ok = await confirmDialog({
      title: `Roll back import #${imp.number}?`,
      message: `The ${num(c.created)} rows it created are deleted, the ${num(c.updated)} it updated get their previous values back${c.destroyed ? `, and the ${num(c.destroyed)} it deleted come back` : ''}. This cannot be undone.`,
      confirm: 'Roll back',
      danger: true,
    });
    if (!ok) return;
    await act('rollback', 'Rollback started.');
  }

  async function act(verb, doneText) {
    replace(actionStatus, h('p', { class: 'muted', role: 'status' }, 'Working…'));
    try {
      const res = await api(`${path}/${verb}`, { method: 'POST' });
      pending = LIVE.has(res.status);
      replace(actionStatus, noticeBox(OUTCOME[res.status] && !pending ? OUTCOME[res.status] : doneText));
      show(res);
      follow();
    } catch (e) {
      replace(actionStatus, errorBox(e, verb === 'cancel' ? 'The import could not be cancelled' : 'The import could not be rolled back'));
    }
    actionStatus.focus();
  }

  function addEvent(ev) {
    if (seenEvents.has(ev.id)) return;
    seenEvents.add(ev.id);
    lastEventId = Math.max(lastEventId ?? 0, ev.id);
    timeline.append(eventItem(ev, imp));
  }

  /** Follows the import live until it ends (again after a cancel or rollback). */
  function follow() {
    if (signal.aborted) return;
    if (stopWatch) stopWatch();
    stopWatch = watchImport(imp.id, (type, data) => {
      if (signal.aborted) return;
      if (type === 'progress') show({ ...imp, ...data });
      else if (type === 'end') {
        show(data);
        loadErrors(true);
      } else if (type === 'closed') {
        stopWatch = null;
      } else if (data && typeof data === 'object' && data.type) {
        addEvent(data);
      }
    }, { first: true, lastEventId, signal });
  }

  async function loadEvents() {
    let cursor = null;
    for (let i = 0; i < 20; i += 1) {
      const page = await ctx.api(`${path}/events${qs({ limit: 500, cursor })}`);
      for (const ev of page.data) addEvent(ev);
      if (!page.has_more) break;
      cursor = page.next_cursor;
    }
  }

  async function loadErrors(refresh) {
    const invalid = (imp.counts && imp.counts.invalid) || 0;
    const live = LIVE.has(imp.status);
    if (refresh) {
      // Only the first page changes when new errors arrive; keep a later page as is.
      if (errorsState.cursor || (invalid === errorsState.shownInvalid && live === errorsState.shownLive)) return;
    }
    errorsState.shownInvalid = invalid;
    errorsState.shownLive = live;
    const head = h('div', { class: 'section-head' },
      h('h2', { id: 'errors-title' }, `Rejected rows (${num(invalid)})`));
    if (!invalid) {
      replace(errorsSection, head, h('p', { class: 'empty' },
        live ? 'No rejected rows so far.' : 'No row was rejected.'));
      return;
    }
    const download = h('button', { type: 'button', class: 'btn', id: 'download-rejected' }, 'Download rejected rows (CSV)');
    const downloadStatus = h('span', { class: 'muted small', role: 'status' });
    download.addEventListener('click', async () => {
      download.disabled = true;
      downloadStatus.textContent = 'Preparing the file…';
      try {
        const { size, truncated } = await downloadRejected(imp.id, imp.number);
        const part = /^(\d+) of (\d+)$/.exec(truncated || '');
        downloadStatus.textContent = `Saved import-${imp.number}-rejected.csv (${bytes(size)}${part ? `, ${num(Number(part[1]))} of the ${num(Number(part[2]))} rejected rows` : ''}): fix the rows and upload it again.`;
      } catch (e) {
        replace(downloadStatus, errorBox(e, 'The download failed'));
      }
      download.disabled = false;
    });
    let page;
    let summary;
    try {
      [page, summary] = await Promise.all([
        ctx.api(`${path}/errors${qs({ limit: ERRORS_PAGE, cursor: errorsState.cursor })}`),
        loadSummary(invalid),
      ]);
    } catch (e) {
      if (signal.aborted) return;
      head.append(h('div', { class: 'head-actions' }, download, downloadStatus));
      replace(errorsSection, head, errorBox(e, 'The rejected rows could not be loaded'));
      return;
    }
    if (signal.aborted) return;
    head.append(h('div', { class: 'head-actions' }, download, truncationWarning(summary, imp), downloadStatus));
    const multi = (imp.tables || []).length > 1;
    const table = h('table', { class: 'list errors stack' },
      h('caption', { class: 'visually-hidden' }, 'Rejected rows, in file order'),
      h('thead', {}, h('tr', {},
        (multi ? ['Table'] : []).concat(['Line', 'Column', 'Code', 'Message', 'Original row'])
          .map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, page.data.map((e) => h('tr', {},
        multi ? h('td', { 'data-label': 'Table' }, e.table) : null,
        h('td', { class: 'num', 'data-label': 'Line' }, num(e.line)),
        h('td', { 'data-label': 'Column' }, e.column ? h('code', {}, e.column) : h('span', { class: 'muted' }, '–')),
        h('td', { 'data-label': 'Code' }, h('code', { class: 'code' }, e.code)),
        h('td', { 'data-label': 'Message', class: 'message' }, e.message),
        h('td', { 'data-label': 'Original row', class: 'row-text' }, originalRow(e.row))))));
    const stored = errorsState.previous.length * ERRORS_PAGE + page.data.length;
    const pager = h('nav', { class: 'pager', 'aria-label': 'Pages of rejected rows' },
      errorsState.cursor ? h('button', {
        type: 'button', class: 'btn small', id: 'errors-prev',
        onclick: () => { errorsState.cursor = errorsState.previous.pop() || null; loadErrors(false).then(() => focusErrors()); },
      }, '‹ Previous') : null,
      h('span', { class: 'muted small' }, `Rows ${num(stored - page.data.length + 1)}–${num(stored)}`),
      page.has_more ? h('button', {
        type: 'button', class: 'btn small', id: 'errors-next',
        onclick: () => { errorsState.previous.push(errorsState.cursor); errorsState.cursor = page.next_cursor; loadErrors(false).then(() => focusErrors()); },
      }, 'Next ›') : null);
    if (!page.data.length && !errorsState.cursor) {
      // Counted but not stored (retention removed them): nothing to list or download.
      replace(errorsSection, head, h('p', { class: 'empty' },
        live ? 'No rejected row is stored yet.' : 'None of these rows is stored any more: they are counted only.'));
      return;
    }
    replace(errorsSection, head, summaryTable(summary, multi), tableWrap('Rejected rows', table), pager);
  }

  /**
   * The rejected rows summed up by table, column and code, or null when the server has no
   * summary (an older server answers 404) or it could not be read: the rows below still show.
   * Fetched again only when the count of invalid rows changed.
   */
  async function loadSummary(invalid) {
    if (errorsState.summaryFor === invalid) return errorsState.summary;
    let summary = null;
    try {
      summary = await ctx.api(`${path}/errors/summary`);
    } catch (e) {
      if (signal.aborted) throw e;
      summary = null;
    }
    if (!summary || typeof summary !== 'object' || !Array.isArray(summary.groups)) summary = null;
    errorsState.summary = summary;
    errorsState.summaryFor = invalid;
    return summary;
  }

  function focusErrors() {
    const t = document.getElementById('errors-title');
    t.setAttribute('tabindex', '-1');
    t.focus();
  }

  show(imp);
  // Subscribed at once, so that leaving the page (ctx.signal) ends it with everything else.
  ctx.onWorkspaceEvent((type, ev) => {
    // A change made elsewhere (another tab, the API) to a finished import: follow it again.
    if (ev && ev.import_id === imp.id && !stopWatch) follow();
  });
  await Promise.all([
    loadEvents().catch((e) => {
      if (!signal.aborted) timeline.after(errorBox(e, 'The timeline could not be loaded'));
    }),
    loadErrors(false),
  ]);
  follow();
  return undefined;
}

/** "Created table orders: 9 columns", with the columns' types and what was read as missing. */
function renderCreated(el, imp) {
  const made = (imp.tables || []).filter((t) => t && t.created_schema && typeof t.created_schema === 'object');
  // Progress events arrive many times a second: redraw only when this part changed.
  const key = JSON.stringify(made.map((t) => [t.table, t.created_schema, t.missing_tokens]));
  if (el.dataset.key === key) return;
  el.dataset.key = key;
  replace(el, made.map((t, i) => {
    const schema = t.created_schema;
    const name = schema.name || t.table;
    const columns = Array.isArray(schema.columns) ? schema.columns : [];
    const pk = Array.isArray(schema.primary_key) ? schema.primary_key : [];
    const missing = Array.isArray(t.missing_tokens) ? t.missing_tokens : [];
    const id = `created-title-${i}`;
    return h('section', { class: 'card created', 'aria-labelledby': id, dataset: { table: name } },
      h('h2', { id }, 'Created table ', h('a', { href: `#/tables/${encodeURIComponent(name)}` }, name),
        `: ${num(columns.length)} ${columns.length === 1 ? 'column' : 'columns'}`),
      h('p', { class: 'help' }, 'The import created this table, with column types chosen from the whole file.'),
      tableWrap(`Columns of ${name}`, h('table', { class: 'list schema created-columns stack' },
        h('caption', { class: 'visually-hidden' }, `Columns of the created table ${name}`),
        h('thead', {}, h('tr', {}, ['Column', 'Type', 'Required', 'Constraints'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, columns.map((c) => h('tr', {},
          h('th', { scope: 'row', 'data-label': 'Column' }, h('code', {}, c.name), pk.includes(c.name) ? h('span', { class: 'tag' }, 'key') : null),
          h('td', { 'data-label': 'Type' }, c.type),
          h('td', { 'data-label': 'Required' }, c.required ? 'yes' : 'no'),
          h('td', { 'data-label': 'Constraints' }, columnConstraints(c) || h('span', { class: 'muted' }, '–'))))))),
      missing.length ? h('p', { class: 'missing-tokens' }, h('strong', {}, 'Read as missing: '),
        missing.map((m, j) => [j ? ', ' : '', m === '' ? 'empty cells' : h('code', {}, m)])) : null);
  }));
}

function columnConstraints(c) {
  const parts = [];
  if (c.unique) parts.push('unique');
  if (Array.isArray(c.values)) parts.push(`one of ${c.values.map((v) => JSON.stringify(v)).join(', ')}`);
  if (c.max_length !== undefined && c.max_length !== null) parts.push(`at most ${c.max_length} characters`);
  return parts.join('; ');
}

/** The groups of rejected rows ("amount · invalid_decimal · 19,702 rows · first at line 3"). */
function summaryTable(summary, multi) {
  if (!summary || !summary.groups.length) return null;
  const all = [...summary.groups].sort((a, b) => (b.count || 0) - (a.count || 0));
  // The largest groups tell what to fix; a long tail would push the rows out of sight.
  const groups = all.slice(0, SUMMARY_GROUPS);
  const rest = all.slice(SUMMARY_GROUPS);
  return h('div', { id: 'errors-summary' },
    tableWrap('Rejected rows by column and reason', h('table', { class: 'list error-groups stack' },
      h('caption', {}, 'By column and reason'),
      h('thead', {}, h('tr', {},
        (multi ? ['Table'] : []).concat(['Column', 'Code', 'Rows', 'First at line', 'Example'])
          .map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, groups.map((g) => h('tr', {},
        multi ? h('td', { 'data-label': 'Table' }, g.table) : null,
        h('td', { 'data-label': 'Column' }, g.column ? h('code', {}, g.column) : h('span', { class: 'muted' }, '–')),
        h('td', { 'data-label': 'Code' }, h('code', { class: 'code' }, g.code)),
        h('td', { 'data-label': 'Rows', class: 'num' }, `${num(g.count)} ${g.count === 1 ? 'row' : 'rows'}`),
        h('td', { 'data-label': 'First at line', class: 'num' }, g.first_line ? `line ${num(g.first_line)}` : '–'),
        h('td', { 'data-label': 'Example', class: 'example' }, exampleText(g.example))))))),
    rest.length ? h('p', { class: 'muted small' },
      `And ${num(rest.length)} smaller groups: ${num(rest.reduce((n, g) => n + (g.count || 0), 0))} rows.`) : null);
}

function exampleText(v) {
  if (v === null || v === undefined) return h('span', { class: 'muted' }, '–');
  const text = typeof v === 'object' ? recordText(v) : String(v);
  return text.length > 80 ? `${text.slice(0, 77)}…` : text;
}

/**
 * Said next to the download when the server kept only some of the rejected rows: from the
 * summary, else from the import's own errors_stored / errors_truncated.
 */
function truncationWarning(summary, imp) {
  let stored;
  let invalid;
  if (summary && summary.truncated === true) {
    ({ stored, invalid } = summary);
  } else if (!summary && imp.errors_truncated === true) {
    stored = imp.errors_stored;
    invalid = imp.counts && imp.counts.invalid;
  } else {
    return null;
  }
  const text = stored === 0
    ? `The download holds none of the ${num(invalid)} rejected rows: they are no longer stored.`
    : `The download holds ${num(stored)} of the ${num(invalid)} rejected rows: only that many were kept.`;
  return h('p', { class: 'notice warn small', id: 'errors-truncated' }, text);
}

/** The original row: short ones in full, long ones folded behind their beginning. */
function originalRow(row) {
  const text = recordText(row);
  if (text.length <= 90) return text;
  return h('details', {}, h('summary', {}, `${text.slice(0, 72)}…`), h('p', {}, text));
}

function renderCounts(el, imp) {
  const cols = ['inputs', 'processed', 'created', 'updated', 'unchanged', 'invalid', 'destroyed', 'warnings'];
  const tables = imp.tables || [];
  // One table's progress is the bar above; several get a column each.
  const several = tables.length > 1;
  const rowFor = (label, status, progress, c, header) => h('tr', {},
    h(header ? 'th' : 'td', { scope: header ? 'row' : null, 'data-label': 'Table' }, label),
    h('td', { 'data-label': 'Status' }, status ? chip(status) : ''),
    several ? h('td', { 'data-label': 'Progress', class: 'num' }, progress === null ? '' : `${progress} %`) : null,
    cols.map((k) => h('td', { class: `num${k === 'invalid' && c[k] ? ' invalid' : ''}`, 'data-label': words(k) }, num(c[k]))));
  const body = tables.map((t) => rowFor(t.table, t.status, t.progress, t.counts || {}, true));
  if (tables.length !== 1) body.push(rowFor('All tables', null, null, imp.counts || {}, true));
  replace(el, tableWrap('Rows per table', h('table', { class: 'list counts stack' },
    h('caption', { class: 'visually-hidden' }, 'Rows per table'),
    h('thead', {}, h('tr', {}, ['Table', 'Status'].concat(several ? ['Progress'] : [], cols.map(words)).map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, body))));
}

function renderMeta(el, imp) {
  const item = (k, v) => (v === null || v === undefined || v === '' ? null : [h('dt', {}, k), h('dd', {}, v)]);
  const formats = [...new Set((imp.tables || []).map((t) => t.format).filter(Boolean))].join(', ');
  replace(el,
    item('File', imp.file_name ? `${imp.file_name}${imp.file_size ? ` (${bytes(imp.file_size)})` : ''}` : null),
    item('Source', formats && formats !== imp.source ? `${imp.source} · ${formats}` : imp.source),
    item('Tables', (imp.tables || []).map((t, i) => [i ? ', ' : '', h('a', { href: `#/tables/${encodeURIComponent(t.table)}` }, t.table)])),
    item('Mode', imp.mode + (imp.cleanup_records ? ' (cleanup of absent rows)' : '')),
    item('On error', imp.on_error + (imp.max_errors !== null && imp.max_errors !== undefined ? ` (max ${imp.max_errors})` : '')),
    item('Dry run', imp.dry_run ? 'yes: nothing was written' : 'no'),
    item('Error', imp.error),
    item('Created', when(imp.created_at)),
    item('Started', imp.started_at ? when(imp.started_at) : null),
    item('Finished', imp.completed_at ? when(imp.completed_at) : null),
    item('Cancelled', imp.cancelled_at ? when(imp.cancelled_at) : null),
    item('Rolled back', imp.rolled_back_at ? when(imp.rolled_back_at) : null),
    item('Can be rolled back until', imp.rollback_available_until && FINISHED.has(imp.status) ? absolute(imp.rollback_available_until) : null),
    item('Reference', imp.reference),
    item('Note', imp.note),
    item('Id', h('code', {}, imp.id)));
}

function eventItem(ev, imp) {
  const d = ev.data && typeof ev.data === 'object' ? ev.data : {};
  const details = [];
  const tables = imp.tables || [];
  if (typeof d.table_position === 'number' && tables.length > 1 && tables[d.table_position]) {
    details.push(tables[d.table_position].table);
  }
  if (typeof d.table === 'string') details.push(d.table);
  // A table created by the import: its schema, and the cells read as missing.
  if (d.table && typeof d.table === 'object' && Array.isArray(d.table.columns)) {
    details.push(`${d.table.name}: ${num(d.table.columns.length)} columns`);
  }
  if (Array.isArray(d.missing_tokens) && d.missing_tokens.length) {
    details.push(`read as missing: ${d.missing_tokens.map((m) => (m === '' ? 'empty cells' : m)).join(', ')}`);
  }
  if (Array.isArray(d.columns) && d.columns.length) {
    details.push(d.columns.map((c) => (c && typeof c === 'object' ? `${c.name} (${c.type})` : String(c))).join(', '));
  }
  if (d.destroyed) details.push(`${num(d.destroyed)} rows absent from the source deleted`);
  if (d.message) details.push(d.message);
  if (d.error) details.push(d.error);
  if (d.counts && typeof d.counts === 'object') {
    const c = d.counts;
    details.push(['created', 'updated', 'unchanged', 'invalid', 'destroyed']
      .filter((k) => c[k]).map((k) => `${num(c[k])} ${k}`).join(', '));
  }
  const bad = /failed|unsupported|warning/.test(ev.type);
  return h('li', { class: bad ? 'bad' : '' },
    h('span', { class: 'ev-type' }, EVENT_TEXT[ev.type] || ev.type),
    ' ', when(ev.created_at),
    details.filter(Boolean).length ? h('span', { class: 'ev-details' }, details.filter(Boolean).join(' · ')) : null,
    h('code', { class: 'ev-code muted small' }, ev.type));
}
