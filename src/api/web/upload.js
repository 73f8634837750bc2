// New import: a file dropped or picked, a table chosen or created from the inferred schema
// (editable types and key), file columns mapped to table columns with a preview of the first
// rows, options, and the upload with its progress.

import { ApiError, api, qs, uploadImport } from './api.js';
import { announce, bar, bytes, cell, errorBox, h, noticeBox, replace, setBar, tableWrap } from './dom.js';
import { SAMPLE_BYTES, columnName, formatFromName, preview, sample, sniff } from './parse.js';

const TYPES = ['string', 'integer', 'float', 'decimal', 'boolean', 'date', 'datetime', 'email', 'url', 'uuid', 'enum', 'json'];
const MIME = { csv: 'text/csv', tsv: 'text/tab-separated-values', ndjson: 'application/x-ndjson', json: 'application/json' };
const IGNORE = '';

export async function renderUpload(main, ctx) {
  if (!ctx.can('member')) {
    replace(main, h('h1', {}, 'New import'),
      noticeBox('Your key is a viewer key: it can look at imports and tables but not start imports. Ask an admin for a member key.', 'info'));
    return;
  }
  const st = {
    file: null,
    sample: null, // {text, truncated}
    infer: null, // the server's proposal
    inferError: null,
    parsed: { header: [], rows: [] },
    tables: [],
    target: 'existing', // or 'new'
    table: ctx.params.get('table') || '',
    newName: '',
    columns: [], // the new table's columns: {source, name, type, required, unique, key, values, include}
    overrides: {}, // source field → column name or IGNORE, chosen by hand
    uploading: null,
  };

  const fileSection = h('section', { class: 'card step', 'aria-labelledby': 'step-file' });
  const tableSection = h('section', { class: 'card step', 'aria-labelledby': 'step-table', hidden: true });
  const mapSection = h('section', { class: 'card step', 'aria-labelledby': 'step-map', hidden: true });
  const optSection = h('section', { class: 'card step', 'aria-labelledby': 'step-options', hidden: true });
  const submitArea = h('div', { class: 'submit-area', hidden: true });
  const form = h('form', { class: 'upload', novalidate: true }, fileSection, tableSection, mapSection, optSection, submitArea);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    start();
  });
  replace(main, h('h1', {}, 'New import'), form);

  try {
    st.tables = (await api('/v1/tables')).data;
  } catch (e) {
    fileSection.before(errorBox(e, 'The tables could not be loaded'));
  }
  if (st.table && !st.tables.some((t) => t.name === st.table)) st.table = '';
  renderFile();

  // ---- 1. the file -------------------------------------------------------------------
  function renderFile() {
    const input = h('input', {
      id: 'file', type: 'file', class: 'visually-hidden',
      accept: '.csv,.tsv,.tab,.txt,.ndjson,.jsonl,.json,text/csv,text/tab-separated-values,application/json,application/x-ndjson',
    });
    input.addEventListener('change', () => { if (input.files[0]) pick(input.files[0]); });
    const zone = h('label', { for: 'file', class: 'dropzone', id: 'dropzone' },
      h('span', { class: 'dz-title' }, st.file ? 'Drop another file here, or choose one' : 'Drop a file here, or choose one'),
      h('span', { class: 'dz-help' }, 'CSV, TSV, NDJSON or JSON. The file is read in this browser for a preview, then uploaded as it is.'),
      h('span', { class: 'btn small', 'aria-hidden': 'true' }, 'Choose a file…'));
    for (const type of ['dragenter', 'dragover']) {
      zone.addEventListener(type, (e) => {
        e.preventDefault();
        e.dataTransfer.dropEffect = 'copy';
        zone.classList.add('over');
      });
    }
    zone.addEventListener('dragleave', () => zone.classList.remove('over'));
    zone.addEventListener('drop', (e) => {
      e.preventDefault();
      zone.classList.remove('over');
      const f = e.dataTransfer.files && e.dataTransfer.files[0];
      if (f) pick(f);
    });
    replace(fileSection,
      h('h2', { id: 'step-file' }, h('span', { class: 'step-n' }, '1'), ' File'),
      input, zone,
      st.file ? h('p', { class: 'file-info', id: 'file-info' },
        h('strong', {}, st.file.name), ` · ${bytes(st.file.size)}`,
        st.infer ? ` · ${st.infer.format.toUpperCase()}${st.infer.format === 'csv' && st.infer.delimiter !== ',' ? ` (delimiter ${JSON.stringify(st.infer.delimiter)})` : ''}` : '',
        st.sample && st.sample.truncated ? h('span', { class: 'muted' }, ` · preview and schema from the first ${bytes(SAMPLE_BYTES)}`) : null) : null,
      st.inferError ? errorBox(st.inferError, 'The file\'s schema could not be inferred') : null);
  }

  async function pick(file) {
    st.file = file;
    st.infer = null;
    st.inferError = null;
    st.overrides = {};
    replace(fileSection.querySelector('.dz-title') || fileSection, `Reading ${file.name}…`);
    st.sample = await sample(file);
    const guess = formatFromName(file.name) || sniff(st.sample.text).format;
    const base = columnName(file.name.replace(/\.[^.]*$/, '')).replace(/^c_/, 't_');
    try {
      st.infer = await api(`/v1/schema/infer${qs({ name: base, format: guess })}`, {
        method: 'POST', body: st.sample.text, headers: { 'Content-Type': MIME[guess] || 'text/plain' },
      });
    } catch (e) {
      st.inferError = e;
    }
    const format = st.infer ? st.infer.format : guess;
    const delimiter = st.infer ? st.infer.delimiter : sniff(st.sample.text).delimiter;
    st.parsed = preview(st.sample.text, format, delimiter, !st.sample.truncated);
    st.columns = st.infer
      ? st.infer.columns.map((c) => ({
        source: c.source, name: c.name, type: c.type, required: c.required, unique: c.unique,
        key: (st.infer.primary_key || []).includes(c.name), values: (c.values || []).join(', '), include: true,
      }))
      : [];
    st.newName = st.infer ? st.infer.table.name : base;
    // A table named like the file is the likely target; otherwise admins start a new one.
    if (!st.table) {
      const same = st.tables.find((t) => t.name === st.newName);
      if (same) st.table = same.name;
    }
    st.target = st.table || !ctx.can('admin') || !st.infer ? 'existing' : 'new';
    renderFile();
    renderTable();
    renderOptions();
    renderSubmit();
    renderMapping();
    announce(`${file.name} read: ${st.parsed.header.length} columns found.`);
  }

  // ---- 2. the table -----------------------------------------------------------------
  function renderTable() {
    tableSection.hidden = false;
    const radio = (value, label, disabled) => h('div', { class: 'check' },
      h('input', {
        type: 'radio', name: 'target', id: `target-${value}`, value, checked: st.target === value, disabled,
        onchange: () => { st.target = value; renderTable(); renderMapping(); },
      }),
      h('label', { for: `target-${value}` }, label));
    const canCreate = ctx.can('admin') && st.infer;
    const parts = [
      h('h2', { id: 'step-table' }, h('span', { class: 'step-n' }, '2'), ' Table'),
      h('fieldset', { class: 'choice' },
        h('legend', {}, 'Load the file into'),
        radio('existing', 'An existing table', !st.tables.length),
        radio('new', 'A new table, from the file\'s inferred schema', !canCreate),
        !ctx.can('admin') ? h('p', { class: 'help' }, 'Creating tables needs an admin key.') : null),
    ];
    if (st.target === 'existing') {
      if (!st.tables.length) {
        parts.push(h('p', { class: 'empty' }, 'There is no table yet.'));
      } else {
        const select = h('select', { id: 'table-select', required: true },
          h('option', { value: '' }, 'Choose a table…'),
          st.tables.map((t) => h('option', { value: t.name, selected: t.name === st.table }, t.name)));
        select.addEventListener('change', () => {
          st.table = select.value;
          st.overrides = {};
          renderTable();
          renderMapping();
        });
        parts.push(h('div', { class: 'field' }, h('label', { for: 'table-select' }, 'Table'), select));
        const t = st.tables.find((x) => x.name === st.table);
        if (t) {
          parts.push(h('p', { class: 'help' },
            `${t.columns.length} columns: `,
            t.columns.map((c, i) => [i ? ', ' : '', h('code', {}, c.name), ` ${c.type}`]),
            t.primary_key.length ? `; key ${t.primary_key.join(', ')}` : ''));
        }
      }
    } else {
      parts.push(schemaEditor());
    }
    replace(tableSection, parts);
  }

  function schemaEditor() {
    const name = h('input', { id: 'new-table-name', value: st.newName, required: true, 'aria-describedby': 'new-table-help', autocomplete: 'off' });
    name.addEventListener('input', () => { st.newName = name.value.trim(); });
    const rows = st.columns.map((c, i) => {
      const id = `col-${i}`;
      const values = h('input', {
        id: `${id}-values`, value: c.values, class: 'values', placeholder: 'US, FR, DE',
        'aria-label': `Allowed values of ${c.source}`, hidden: c.type !== 'enum',
        oninput: (e) => { c.values = e.target.value; },
      });
      const required = h('input', {
        type: 'checkbox', id: `${id}-required`, checked: c.required || c.key, disabled: c.key,
        'aria-label': `${c.source} is required`, onchange: (e) => { c.required = e.target.checked; },
      });
      return h('tr', { class: c.include ? '' : 'excluded' },
        h('td', { 'data-label': 'Create' }, h('input', {
          type: 'checkbox', id: `${id}-include`, checked: c.include, 'aria-label': `Create a column for ${c.source}`,
          onchange: (e) => { c.include = e.target.checked; renderTable(); renderMapping(); },
        })),
        h('th', { scope: 'row', 'data-label': 'File column' }, h('code', {}, c.source)),
        h('td', { 'data-label': 'Column name' }, h('input', {
          id: `${id}-name`, value: c.name, class: 'colname', 'aria-label': `Column name for ${c.source}`,
          autocomplete: 'off', spellcheck: 'false', disabled: !c.include,
          onchange: (e) => { c.name = e.target.value.trim(); renderMapping(); },
        })),
        h('td', { 'data-label': 'Type' }, h('select', {
          id: `${id}-type`, 'aria-label': `Type of ${c.source}`, disabled: !c.include,
          onchange: (e) => { c.type = e.target.value; values.hidden = c.type !== 'enum'; renderMapping(); },
        }, TYPES.map((t) => h('option', { value: t, selected: t === c.type }, t))), values),
        h('td', { 'data-label': 'Required', class: 'center' }, required),
        h('td', { 'data-label': 'Unique', class: 'center' }, h('input', {
          type: 'checkbox', id: `${id}-unique`, checked: c.unique, 'aria-label': `${c.source} is unique`,
          onchange: (e) => { c.unique = e.target.checked; },
        })),
        h('td', { 'data-label': 'Key', class: 'center' }, h('input', {
          type: 'checkbox', id: `${id}-key`, checked: c.key, 'aria-label': `${c.source} is part of the primary key`,
          onchange: (e) => {
            c.key = e.target.checked;
            // Key columns are always required.
            required.checked = c.key || c.required;
            required.disabled = c.key;
          },
        })));
    });
    return h('div', { class: 'schema-editor' },
      h('div', { class: 'field' },
        h('label', { for: 'new-table-name' }, 'Table name'), name,
        h('p', { class: 'help', id: 'new-table-help' }, 'Lowercase letters, digits and _, starting with a letter.')),
      h('p', { class: 'help' }, `Types proposed from ${st.infer.sampled_rows} sampled rows. Check them: a column with a few bad values in the sample is proposed as string, and a stricter type rejects those rows instead.`),
      tableWrap('Columns of the new table', h('table', { class: 'list editor stack' },
        h('caption', { class: 'visually-hidden' }, 'Columns of the new table'),
        h('thead', {}, h('tr', {}, ['Create', 'File column', 'Column name', 'Type', 'Required', 'Unique', 'Key'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, rows))));
  }

  /** The columns the file can load into: the chosen table's, or the new table's. */
  function targetColumns() {
    if (st.target === 'new') return st.columns.filter((c) => c.include && c.name).map((c) => ({ name: c.name, type: c.type }));
    const t = st.tables.find((x) => x.name === st.table);
    return t ? t.columns : [];
  }

  /** The column a file field goes to unless chosen by hand (what the server would do). */
  function defaultTarget(source, names) {
    if (st.target === 'new') {
      const c = st.columns.find((x) => x.source === source);
      return c && c.include && c.name ? c.name : IGNORE;
    }
    if (names.includes(source)) return source;
    const derived = columnName(source);
    if (names.includes(derived)) return derived;
    const inferred = st.infer && st.infer.mapping[source];
    return inferred && names.includes(inferred) ? inferred : IGNORE;
  }

  function mapping() {
    const names = targetColumns().map((c) => c.name);
    const out = {};
    for (const source of st.parsed.header) {
      const o = st.overrides[source];
      out[source] = o !== undefined && (o === IGNORE || names.includes(o)) ? o : defaultTarget(source, names);
    }
    return out;
  }

  // ---- 3. mapping and preview ---------------------------------------------------------
  function renderMapping() {
    const cols = targetColumns();
    if (!st.file || !cols.length || !st.parsed.header.length) {
      mapSection.hidden = !st.file;
      replace(mapSection, h('h2', { id: 'step-map' }, h('span', { class: 'step-n' }, '3'), ' Columns'),
        h('p', { class: 'empty' }, st.parsed.header.length ? 'Choose a table first.' : 'No column could be read from the file\'s first rows.'));
      return;
    }
    mapSection.hidden = false;
    const m = mapping();
    const names = cols.map((c) => c.name);
    const rows = st.parsed.header.map((source, i) => {
      const id = `map-${i}`;
      const samples = st.parsed.rows.slice(0, 3).map((r) => r[i]).filter((v) => v !== null && v !== undefined && v !== '');
      const select = h('select', { id, 'data-source': source },
        h('option', { value: IGNORE, selected: m[source] === IGNORE }, '— ignore this column —'),
        cols.map((c) => h('option', { value: c.name, selected: m[source] === c.name }, `${c.name} (${c.type})`)));
      select.addEventListener('change', () => {
        st.overrides[source] = select.value;
        renderMapping();
        document.getElementById(id).focus();
      });
      return h('tr', { class: m[source] === IGNORE ? 'excluded' : '' },
        h('th', { scope: 'row', 'data-label': 'File column' }, h('label', { for: id }, h('code', {}, source))),
        h('td', { 'data-label': 'First values', class: 'samples' }, samples.join(' · ') || h('span', { class: 'muted' }, 'empty')),
        h('td', { 'data-label': 'Loads into' }, select));
    });
    const used = Object.values(m).filter((v) => v !== IGNORE);
    const dupes = used.filter((v, i) => used.indexOf(v) !== i);
    const missing = (st.target === 'existing' ? cols : [])
      .filter((c) => c.required && c.default === undefined && !used.includes(c.name)).map((c) => c.name);
    const mapped = names.filter((n) => used.includes(n));
    const previewTable = h('table', { class: 'list preview', id: 'preview' },
      h('caption', {}, `Preview: the first ${st.parsed.rows.length} rows as they will load`),
      h('thead', {}, h('tr', {}, mapped.map((n) => h('th', { scope: 'col' }, n)))),
      h('tbody', {}, st.parsed.rows.map((r) => h('tr', {}, mapped.map((n) => {
        const i = st.parsed.header.findIndex((s) => m[s] === n);
        const v = r[i];
        return h('td', {}, v === undefined ? h('span', { class: 'null' }, 'missing') : cell(v));
      })))));
    replace(mapSection,
      h('h2', { id: 'step-map' }, h('span', { class: 'step-n' }, '3'), ' Columns'),
      h('p', { class: 'help' }, 'Each column of the file loads into the table column chosen here.'),
      tableWrap('Column mapping', h('table', { class: 'list mapping stack' },
        h('caption', { class: 'visually-hidden' }, 'Column mapping'),
        h('thead', {}, h('tr', {}, ['File column', 'First values', 'Loads into'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, rows))),
      dupes.length ? errorBox({ message: `Several file columns load into ${[...new Set(dupes)].join(', ')}: choose one.` }) : null,
      missing.length ? noticeBox(`Required columns with no file column: ${missing.join(', ')}. Every row will be rejected unless you map them.`, 'warn') : null,
      mapped.length ? tableWrap('Preview of the first rows', previewTable) : null);
  }

  // ---- 4. options -----------------------------------------------------------------------
  function renderOptions() {
    if (!optSection.hidden) return;
    optSection.hidden = false;
    const select = (id, label, options, help) => h('div', { class: 'field' },
      h('label', { for: id }, label),
      h('select', { id, name: id, 'aria-describedby': `${id}-help` }, options.map(([v, t]) => h('option', { value: v }, t))),
      h('p', { class: 'help', id: `${id}-help` }, help));
    const mode = select('mode', 'Mode', [['insert', 'Insert'], ['upsert', 'Upsert'], ['replace', 'Replace']],
      'Insert adds rows (a key already present is rejected). Upsert creates or updates rows by the primary key. Replace makes the table hold exactly the file\'s valid rows.');
    const onError = select('on_error', 'When a row is invalid', [['skip', 'Skip it and go on'], ['abort', 'Stop and undo everything'], ['atomic', 'Check every row first; write nothing unless all are valid']],
      'Skipped rows are listed with their line and reason, and can be downloaded as CSV to fix.');
    const cleanup = h('div', { class: 'check', id: 'cleanup-field', hidden: true },
      h('input', { type: 'checkbox', id: 'cleanup_records' }),
      h('label', { for: 'cleanup_records' }, 'Delete the table\'s rows whose key is not in the file'));
    mode.querySelector('select').addEventListener('change', (e) => { cleanup.hidden = e.target.value !== 'upsert'; });
    replace(optSection,
      h('h2', { id: 'step-options' }, h('span', { class: 'step-n' }, '4'), ' Options'),
      h('div', { class: 'grid2' }, mode, onError),
      cleanup,
      h('div', { class: 'check' },
        h('input', { type: 'checkbox', id: 'dry_run', 'aria-describedby': 'dry-help' }),
        h('label', { for: 'dry_run' }, 'Dry run'),
        h('span', { class: 'help inline', id: 'dry-help' }, 'Validate every row and count what would change, writing nothing.')),
      h('details', { class: 'more' },
        h('summary', {}, 'More options'),
        h('div', { class: 'grid2' },
          h('div', { class: 'field' }, h('label', { for: 'max_errors' }, 'Most invalid rows tolerated'),
            h('input', { id: 'max_errors', type: 'number', min: 0, inputmode: 'numeric', 'aria-describedby': 'max-help' }),
            h('p', { class: 'help', id: 'max-help' }, 'Empty: no limit when skipping, none tolerated when stopping.')),
          h('div', { class: 'field' }, h('label', { for: 'null_values' }, 'Cells that mean null'),
            h('input', { id: 'null_values', placeholder: 'NA,null', 'aria-describedby': 'null-help' }),
            h('p', { class: 'help', id: 'null-help' }, 'A comma list; empty cells are null anyway.')),
          h('div', { class: 'field' }, h('label', { for: 'note' }, 'Note'),
            h('input', { id: 'note', maxlength: 2000 })))));
  }

  // ---- 5. upload ----------------------------------------------------------------------
  function renderSubmit() {
    submitArea.hidden = false;
    const button = h('button', { type: 'submit', class: 'btn primary big', id: 'start' }, 'Start import');
    replace(submitArea, h('div', { id: 'upload-status' }), button);
  }

  function value(id) {
    const el = document.getElementById(id);
    return el ? (el.type === 'checkbox' ? el.checked : el.value.trim()) : '';
  }

  async function start() {
    const status = document.getElementById('upload-status');
    const button = document.getElementById('start');
    const fail = (e, prefix) => {
      replace(status, errorBox(e, prefix));
      status.querySelector('[role=alert]').setAttribute('tabindex', '-1');
      status.querySelector('[role=alert]').focus();
    };
    if (!st.file) return fail({ message: 'Choose a file first.' });
    const m = mapping();
    const used = Object.values(m).filter((v) => v !== IGNORE);
    if (used.some((v, i) => used.indexOf(v) !== i)) return fail({ message: 'Two file columns load into the same table column: fix the mapping.' });
    const fieldset = [tableSection, mapSection, optSection, fileSection];
    const lock = (on) => {
      button.disabled = on;
      for (const s of fieldset) s.toggleAttribute('inert', on);
    };
    lock(true);
    try {
      if (st.target === 'new') {
        replace(status, h('p', { role: 'status' }, `Creating the table ${st.newName}…`));
        const cols = st.columns.filter((c) => c.include);
        const table = await api('/v1/tables', {
          method: 'POST',
          json: {
            name: st.newName,
            columns: cols.map((c) => {
              const col = { name: c.name, type: c.type, required: c.required || c.key, unique: c.unique };
              if (c.type === 'enum') col.values = c.values.split(',').map((v) => v.trim()).filter(Boolean);
              return col;
            }),
            primary_key: cols.filter((c) => c.key).map((c) => c.name),
          },
        });
        // From here on the table exists: a retry loads into it rather than creating it again.
        st.tables.push(table);
        st.tables.sort((a, b) => a.name.localeCompare(b.name));
        st.table = table.name;
        st.target = 'existing';
        renderTable();
        announce(`Table ${table.name} created.`);
      }
      if (!st.table) throw new ApiError(0, 'validation', 'Choose the table to load.');
      const options = {
        table: st.table,
        mode: value('mode'),
        on_error: value('on_error'),
        dry_run: value('dry_run') ? 'true' : '',
        cleanup_records: value('mode') === 'upsert' && value('cleanup_records') ? 'true' : '',
        max_errors: value('max_errors'),
        null_values: value('null_values'),
        note: value('note'),
        mapping: explicitMapping(m),
      };
      const progress = bar(0, 'Upload progress');
      const text = h('p', { class: 'muted small' }, `0 of ${bytes(st.file.size)} sent`);
      const abort = h('button', { type: 'button', class: 'btn small' }, 'Cancel upload');
      replace(status, h('div', { class: 'uploading', role: 'group', 'aria-label': 'Upload' },
        h('p', {}, `Uploading ${st.file.name} into ${st.table}…`), progress, text, abort));
      const up = uploadImport(st.file, options, (loaded, total) => {
        setBar(progress, (loaded / total) * 100);
        text.textContent = `${bytes(loaded)} of ${bytes(total)} sent`;
      });
      abort.addEventListener('click', up.abort);
      const imp = await up.promise;
      setBar(progress, 100);
      announce(`Uploaded. Import number ${imp.number} is ${imp.status}.`);
      ctx.navigate(`#/imports/${imp.id}`);
    } catch (e) {
      lock(false);
      if (e.code === 'aborted') replace(status, noticeBox('Upload cancelled: nothing was imported.', 'info'));
      else fail(e, 'The import could not start');
    }
  }

  /** The mapping to send: only what differs from what the server does by itself. */
  function explicitMapping(m) {
    const names = targetColumns().map((c) => c.name);
    const out = {};
    for (const [source, target] of Object.entries(m)) {
      const auto = names.includes(source) ? source : names.includes(columnName(source)) ? columnName(source) : null;
      const chosen = target === IGNORE ? null : target;
      // An ignored field is named too: the server then knows it was left out on purpose and
      // does not warn about it.
      if (chosen !== auto || chosen === null) out[source] = chosen;
    }
    return Object.keys(out).length ? out : '';
  }
}
