// New import: a file dropped or picked, how to read it (delimiter, cells that mean null), a
// table chosen, created by the server from the whole file, or created here from the proposed
// schema (editable types, constraints, enum values and key), file columns mapped to table
// columns with a preview of the first rows, options, and the upload with its progress.

import { ApiError, api, qs, uploadImport } from './api.js';
import { announce, bar, bytes, cell, errorBox, h, noticeBox, replace, setBar, tableWrap } from './dom.js';
import { SAMPLE_BYTES, columnName, formatFromName, preview, sample, sniff, withoutCompression } from './parse.js';

const TYPES = ['string', 'integer', 'float', 'decimal', 'boolean', 'date', 'datetime', 'email', 'url', 'uuid', 'enum', 'json'];
/** The largest workbook or zstd/zip file sent whole for a proposal (the server's sample limit). */
const BINARY_PROPOSAL_BYTES = 16 * 1024 * 1024;
const MIME = { csv: 'text/csv', tsv: 'text/tab-separated-values', ndjson: 'application/x-ndjson', json: 'application/json' };
const IGNORE = '';
const DELIMITERS = [['', 'Detect'], [',', 'Comma ( , )'], [';', 'Semicolon ( ; )'], ['tab', 'Tab'], ['|', 'Pipe ( | )']];
/** How long typing in "Cells that mean null" pauses before the schema is proposed again. */
const REPROPOSE_MS = 500;

export async function renderUpload(main, ctx) {
  if (!ctx.can('member')) {
    replace(main, h('h1', {}, 'New import'),
      noticeBox('Your key is a viewer key: it can look at imports and tables but not start imports. Ask an admin for a member key.', 'info'));
    return;
  }
  const st = {
    file: null,
    sample: null, // {text, truncated}
    format: null, // the file's format: the proposal's, else guessed here
    infer: null, // the server's proposal
    inferError: null,
    proposing: null, // the AbortController of the proposal being asked for
    proposedWith: null, // the reading settings of the last proposal asked for
    parsed: { header: [], rows: [] },
    tables: [],
    target: 'existing', // 'create' (by the server, from the whole file) or 'new' (from the schema here)
    table: ctx.params.get('table') || '',
    newName: '',
    nameEdited: false,
    // The new table's columns: {source, name, type, required, unique, key, values: [], include}.
    columns: [],
    // What was edited by hand, by file column: {field: value}, kept over new proposals.
    edits: new Map(),
    overrides: {}, // source field → column name or IGNORE, chosen by hand
    shown: false, // whether the steps after the file are shown for this file
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
    st.tables = (await ctx.api('/v1/tables')).data;
  } catch (e) {
    if (ctx.signal.aborted) return;
    fileSection.before(errorBox(e, 'The tables could not be loaded'));
  }
  if (ctx.signal.aborted) return;
  // A table asked for that does not exist (yet) is the name of the one to create.
  const requestedNew = st.table && !st.tables.some((t) => t.name === st.table) ? st.table : '';
  if (requestedNew) st.table = '';

  // ---- 1. the file, and how to read it -------------------------------------------------
  // Built once: the reading settings keep their focus while the proposal is asked again.
  const input = h('input', {
    id: 'file', type: 'file', class: 'visually-hidden',
    accept: '.csv,.tsv,.tab,.txt,.ndjson,.jsonl,.json,.gz,.zst,.zip,.xlsx,.xlsb,.xls,.ods,text/csv,text/tab-separated-values,application/json,application/x-ndjson,application/gzip,application/zstd,application/zip,application/vnd.openxmlformats-officedocument.spreadsheetml.sheet,application/vnd.ms-excel,application/vnd.oasis.opendocument.spreadsheet',
  });
  input.addEventListener('change', () => { if (input.files[0]) pick(input.files[0]); });
  const zoneTitle = h('span', { class: 'dz-title' }, 'Drop a file here, or choose one');
  const zone = h('label', { for: 'file', class: 'dropzone', id: 'dropzone' },
    zoneTitle,
    h('span', { class: 'dz-help' }, 'CSV, TSV, NDJSON, JSON or a workbook (xlsx, xls, ods), plain or gzip, zstd or zip compressed. The file is read in this browser for a preview (workbooks and zstd or zip files by the server), then uploaded as it is.'),
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
  const fileInfo = h('div', { id: 'file-status' });
  const delimiter = h('select', { id: 'delimiter', name: 'delimiter', 'aria-describedby': 'delimiter-help' },
    DELIMITERS.map(([v, t]) => h('option', { value: v }, t)));
  const delimiterField = h('div', { class: 'field' },
    h('label', { for: 'delimiter' }, 'Delimiter'), delimiter,
    h('p', { class: 'help', id: 'delimiter-help' }, 'The character between fields of a CSV file.'));
  const nullValues = h('input', { id: 'null_values', placeholder: 'NA,null', autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'null-help' });
  const sheet = h('input', { id: 'sheet', name: 'sheet', placeholder: 'the first', autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'sheet-help' });
  const sheetField = h('div', { class: 'field', hidden: true },
    h('label', { for: 'sheet' }, 'Sheet'), sheet,
    h('p', { class: 'help', id: 'sheet-help' }, 'The sheet of a workbook to load: its name, or its position from 1.'));
  const reading = h('fieldset', { class: 'reading', hidden: true },
    h('legend', {}, 'Reading the file'),
    h('div', { class: 'grid2' },
      delimiterField,
      sheetField,
      h('div', { class: 'field' }, h('label', { for: 'null_values' }, 'Cells that mean null'), nullValues,
        h('p', { class: 'help', id: 'null-help' }, 'A comma list, such as NA,N/A; empty cells are null anyway. Changing it proposes the schema again.'))));
  // The proposal depends on these: ask again when they change (typing pauses first).
  let typingTimer = null;
  ctx.signal.addEventListener('abort', () => clearTimeout(typingTimer));
  delimiter.addEventListener('change', () => propose());
  sheet.addEventListener('change', () => propose());
  nullValues.addEventListener('input', () => {
    // The preview shows the new null cells at once; the proposal follows when typing pauses.
    if (st.shown) renderMapping();
    clearTimeout(typingTimer);
    typingTimer = setTimeout(() => propose(), REPROPOSE_MS);
  });
  nullValues.addEventListener('change', () => {
    clearTimeout(typingTimer);
    propose();
  });
  replace(fileSection,
    h('h2', { id: 'step-file' }, h('span', { class: 'step-n' }, '1'), ' File'),
    input, zone, fileInfo, reading);

  function readingSettings() {
    return { delimiter: delimiter.value, null_values: nullValues.value.trim(), sheet: sheet.value.trim() };
  }

  /** The cells the settings read as null, for the preview. */
  function nullTokens() {
    return new Set(nullValues.value.split(',').map((v) => v.trim()).filter(Boolean));
  }

  function renderFile(busy) {
    zoneTitle.textContent = st.file ? 'Drop another file here, or choose one' : 'Drop a file here, or choose one';
    if (!st.file) return;
    reading.hidden = false;
    delimiterField.hidden = st.format !== 'csv' && st.format !== 'tsv';
    sheetField.hidden = !(st.sample && st.sample.binary);
    const d = st.infer && st.infer.delimiter;
    replace(fileInfo,
      h('p', { class: 'file-info', id: 'file-info' },
        h('strong', {}, st.file.name), ` · ${bytes(st.file.size)}`,
        st.infer && st.infer.sheet ? ` · sheet ${JSON.stringify(st.infer.sheet)}`
          : st.format ? ` · ${st.format.toUpperCase()}${st.format === 'csv' && d && d !== ',' ? ` (delimiter ${JSON.stringify(d)})` : ''}` : '',
        st.sample && st.sample.binary ? h('span', { class: 'muted' }, ' · read by the server; preview and proposed schema from its first rows')
          : st.sample && st.sample.truncated ? h('span', { class: 'muted' }, ` · preview and proposed schema from the first ${bytes(SAMPLE_BYTES)}`) : null),
      busy ? h('p', { class: 'muted small', role: 'status', id: 'proposing' }, busy) : null,
      st.inferError ? errorBox(st.inferError, 'The file\'s schema could not be inferred') : null);
  }

  async function pick(file) {
    if (st.proposing) st.proposing.abort();
    st.file = file;
    st.infer = null;
    st.inferError = null;
    st.overrides = {};
    st.columns = [];
    st.edits = new Map();
    st.nameEdited = Boolean(requestedNew);
    st.proposedWith = null;
    st.shown = false;
    // Another file may have another delimiter or sheets; the cells that mean null are kept.
    delimiter.value = '';
    sheet.value = '';
    zoneTitle.textContent = `Reading ${file.name}…`;
    const text = await sample(file);
    if (ctx.signal.aborted || st.file !== file) return;
    st.sample = text;
    st.format = text.binary ? null : formatFromName(file.name) || sniff(st.sample.text).format;
    st.newName = requestedNew || tableNameFor(file.name);
    await propose({ force: true });
  }

  /** The steps after the file, once its first proposal is in. */
  function showSteps() {
    st.shown = true;
    // A table named like the file is the likely target; otherwise admins start a new one,
    // which the server makes from the whole file unless they choose to check a schema first.
    if (!st.table) {
      const same = st.tables.find((t) => t.name === st.newName);
      if (same) st.table = same.name;
    }
    st.target = st.table || !ctx.can('admin') ? 'existing' : 'create';
    renderOptions();
    renderTable();
    renderSubmit();
    renderMapping();
    announce(`${st.file.name} read: ${st.parsed.header.length} columns found.`);
  }

  /**
   * Asks the server for a schema proposal from the sample with the reading settings, and
   * re-parses the preview with them. A proposal asked again keeps what was edited by hand.
   * A newer proposal, another file or leaving the page drops it. `force` asks even when the
   * settings did not change (a new file).
   */
  async function propose({ force = false } = {}) {
    if (!st.file || !st.sample) return;
    const settings = readingSettings();
    const key = JSON.stringify(settings);
    if (!force && key === st.proposedWith) return;
    st.proposedWith = key;
    if (st.proposing) st.proposing.abort();
    const ctl = new AbortController();
    st.proposing = ctl;
    const signal = AbortSignal.any([ctx.signal, ctl.signal]);
    const file = st.file;
    renderFile(st.shown ? 'Proposing the schema again with these settings…' : null);
    const binary = Boolean(st.sample.binary);
    const guess = binary ? null : formatFromName(file.name) || sniff(st.sample.text).format;
    let infer = null;
    let error = null;
    try {
      const name = st.newName || tableNameFor(file.name);
      if (binary && file.size > BINARY_PROPOSAL_BYTES) {
        throw new ApiError(0, 'too_large', `A workbook or compressed file is read by the server for its preview, up to ${bytes(BINARY_PROPOSAL_BYTES)}: this one is larger. Create the table from the whole file, or load it into an existing table.`);
      }
      // A workbook, zip or zstd file goes whole: the server reads it and sends its first rows back.
      infer = binary
        ? await api(`/v1/schema/infer${qs({ name, delimiter: settings.delimiter, null_values: settings.null_values, sheet: settings.sheet })}`, {
          method: 'POST', body: file, headers: { 'Content-Type': 'application/octet-stream' }, signal,
        })
        : await api(`/v1/schema/infer${qs({ name, format: guess, delimiter: settings.delimiter, null_values: settings.null_values })}`, {
          method: 'POST', body: st.sample.text, headers: { 'Content-Type': MIME[guess] || 'text/plain' }, signal,
        });
    } catch (e) {
      if (signal.aborted) return;
      error = e;
    }
    if (signal.aborted || st.file !== file) return;
    st.proposing = null;
    st.infer = infer;
    st.inferError = error;
    if (binary) st.sample = { text: (infer && infer.sample) || '', truncated: true, binary: true };
    st.format = infer ? infer.format : guess;
    const d = settings.delimiter === 'tab' ? '\t' : settings.delimiter || (infer ? infer.delimiter : sniff(st.sample.text).delimiter);
    st.parsed = preview(st.sample.text, st.format, d, !st.sample.truncated);
    st.columns = infer ? withEdits(proposedColumns(infer), st.edits) : [];
    if (infer && !st.nameEdited && infer.table && infer.table.name) st.newName = infer.table.name;
    if (!infer && st.target === 'new') st.target = ctx.can('admin') ? 'create' : 'existing';
    renderFile(null);
    if (!st.shown) {
      showSteps();
      return;
    }
    renderTable();
    renderMapping();
    announce(infer ? 'The schema was proposed again.' : 'The schema could not be proposed.');
  }

  // ---- 2. the table -----------------------------------------------------------------
  function renderTable() {
    tableSection.hidden = false;
    const radio = (value, label, help, disabled) => h('div', { class: 'check' },
      h('input', {
        type: 'radio', name: 'target', id: `target-${value}`, value, checked: st.target === value, disabled,
        'aria-describedby': help ? `target-${value}-help` : null,
        onchange: () => { st.target = value; renderTable(); renderMapping(); },
      }),
      h('label', { for: `target-${value}` }, label),
      help ? h('span', { class: 'help inline', id: `target-${value}-help` }, help) : null);
    const admin = ctx.can('admin');
    const parts = [
      h('h2', { id: 'step-table' }, h('span', { class: 'step-n' }, '2'), ' Table'),
      h('fieldset', { class: 'choice' },
        h('legend', {}, 'Load the file into'),
        radio('existing', 'An existing table', null, !st.tables.length),
        radio('create', 'Create a new table from this file',
          'The server reads the whole file, chooses each column\'s type from all of it, creates the table and loads it.', !admin),
        radio('new', 'A new table, from a schema I check first',
          `Types proposed from the file's first rows; you set required, unique, key and enum values.`, !admin || !st.infer),
        !admin ? h('p', { class: 'help' }, 'Creating tables needs an admin key.') : null),
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
    } else if (st.target === 'create') {
      parts.push(oneStep());
    } else {
      parts.push(schemaEditor());
    }
    replace(tableSection, parts);
    syncOptions();
  }

  /** Options the one-step load refuses: a dry run needs an existing table. */
  function syncOptions() {
    const dry = document.getElementById('dry_run');
    if (!dry) return;
    const create = st.target === 'create';
    if (create) dry.checked = false;
    dry.disabled = create;
    document.getElementById('dry-help').textContent = create
      ? 'Not with a table created from the file: to preview one, choose "A new table, from a schema I check first".'
      : 'Validate every row and count what would change, writing nothing.';
  }

  function nameField() {
    const name = h('input', {
      id: 'new-table-name', value: st.newName, required: true, 'aria-describedby': 'new-table-help',
      autocomplete: 'off', spellcheck: 'false',
    });
    const exists = h('div', { id: 'new-table-exists' });
    const check = () => {
      const same = st.target === 'create' && st.tables.some((t) => t.name === st.newName);
      replace(exists, same ? noticeBox(`A table named ${st.newName} exists: the file loads into it.`, 'info') : null);
    };
    name.addEventListener('input', () => {
      st.newName = name.value.trim();
      st.nameEdited = true;
      check();
    });
    check();
    return h('div', { class: 'field' },
      h('label', { for: 'new-table-name' }, 'Table name'), name,
      h('p', { class: 'help', id: 'new-table-help' }, 'Lowercase letters, digits and _, starting with a letter.'),
      exists);
  }

  function oneStep() {
    return h('div', { class: 'one-step' },
      nameField(),
      h('p', { class: 'help' }, 'Nothing else to fill in: once the import ends, its page shows the columns and types the table was created with, and which cells were read as missing.'));
  }

  function schemaEditor() {
    const rows = st.columns.map((c, i) => {
      const id = `col-${i}`;
      const edit = (field, v) => {
        c[field] = v;
        st.edits.set(c.source, { ...st.edits.get(c.source), [field]: v });
      };
      const values = valuesEditor(c, id, edit);
      values.hidden = c.type !== 'enum';
      const required = h('input', {
        type: 'checkbox', id: `${id}-required`, checked: c.required || c.key, disabled: c.key,
        'aria-label': `${c.source} is required`, onchange: (e) => edit('required', e.target.checked),
      });
      return h('tr', { class: c.include ? '' : 'excluded' },
        h('td', { 'data-label': 'Create' }, h('input', {
          type: 'checkbox', id: `${id}-include`, checked: c.include, 'aria-label': `Create a column for ${c.source}`,
          onchange: (e) => { edit('include', e.target.checked); renderTable(); renderMapping(); },
        })),
        h('th', { scope: 'row', 'data-label': 'File column' }, h('code', {}, c.source)),
        h('td', { 'data-label': 'Column name' }, h('input', {
          id: `${id}-name`, value: c.name, class: 'colname', 'aria-label': `Column name for ${c.source}`,
          autocomplete: 'off', spellcheck: 'false', disabled: !c.include,
          onchange: (e) => { edit('name', e.target.value.trim()); renderMapping(); },
        })),
        h('td', { 'data-label': 'Type' }, h('select', {
          id: `${id}-type`, 'aria-label': `Type of ${c.source}`, disabled: !c.include,
          onchange: (e) => {
            edit('type', e.target.value);
            const box = document.getElementById(`${id}-values`);
            if (c.type === 'enum' && !c.values.length) {
              // An enum needs its values: start with one empty one to type into.
              edit('values', ['']);
              box.redraw(null);
            }
            box.hidden = c.type !== 'enum';
            renderMapping();
          },
        }, TYPES.map((t) => h('option', { value: t, selected: t === c.type }, t))), values),
        h('td', { 'data-label': 'Required', class: 'center' }, required),
        h('td', { 'data-label': 'Unique', class: 'center' }, h('input', {
          type: 'checkbox', id: `${id}-unique`, checked: c.unique, 'aria-label': `${c.source} is unique`,
          onchange: (e) => edit('unique', e.target.checked),
        })),
        h('td', { 'data-label': 'Key', class: 'center' }, h('input', {
          type: 'checkbox', id: `${id}-key`, checked: c.key, 'aria-label': `${c.source} is part of the primary key`,
          onchange: (e) => {
            edit('key', e.target.checked);
            // Key columns are always required.
            required.checked = c.key || c.required;
            required.disabled = c.key;
          },
        })));
    });
    return h('div', { class: 'schema-editor' },
      nameField(),
      h('p', { class: 'help' }, `Types proposed from ${st.infer.sampled_rows} sampled rows. Check them: a column with a few bad values in the sample is proposed as string, and a stricter type rejects those rows instead. Required, unique and enum are set only where the proposal says so: a sample cannot tell them for the whole file.`),
      tableWrap('Columns of the new table', h('table', { class: 'list editor stack' },
        h('caption', { class: 'visually-hidden' }, 'Columns of the new table'),
        h('thead', {}, h('tr', {}, ['Create', 'File column', 'Column name', 'Type', 'Required', 'Unique', 'Key'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, rows))));
  }

  /**
   * An enum's allowed values as a list: one input per value, with buttons to add and remove.
   * A value is kept whole, commas included. Pasting several lines makes one value per line.
   */
  function valuesEditor(c, id, edit) {
    const box = h('div', { class: 'enum-values', id: `${id}-values`, role: 'group', 'aria-label': `Allowed values of ${c.source}` });
    const draw = (focus) => {
      const items = c.values.map((v, j) => {
        const field = h('input', {
          id: `${id}-value-${j}`, value: v, class: 'enum-value', autocomplete: 'off', spellcheck: 'false',
          'aria-label': `Value ${j + 1} of ${c.source}`,
          oninput: (e) => { const next = [...c.values]; next[j] = e.target.value; edit('values', next); },
        });
        field.addEventListener('keydown', (e) => {
          // Enter adds a value after this one instead of submitting the form.
          if (e.key !== 'Enter') return;
          e.preventDefault();
          const next = [...c.values];
          next.splice(j + 1, 0, '');
          edit('values', next);
          draw(j + 1);
        });
        field.addEventListener('paste', (e) => {
          const text = e.clipboardData && e.clipboardData.getData('text');
          if (!text || !/[\r\n]/.test(text)) return;
          e.preventDefault();
          const lines = text.split(/\r\n|\r|\n/).filter((l) => l.trim() !== '');
          const next = [...c.values];
          next.splice(j, 1, ...lines);
          edit('values', next);
          draw(j + lines.length - 1);
        });
        return h('li', {}, field, h('button', {
          type: 'button', class: 'btn small ghost remove-value', 'aria-label': `Remove value ${j + 1} of ${c.source}`, title: 'Remove this value',
          onclick: () => {
            const next = c.values.filter((_, k) => k !== j);
            edit('values', next);
            draw(next.length ? Math.min(j, next.length - 1) : 'add');
          },
        }, '×'));
      });
      const add = h('button', {
        type: 'button', class: 'btn small add-value', 'aria-label': `Add a value to ${c.source}`,
        onclick: () => {
          edit('values', [...c.values, '']);
          draw(c.values.length - 1);
        },
      }, '+ Add a value');
      replace(box, h('ul', { class: 'values-list' }, items), add);
      if (focus === 'add') add.focus();
      else if (typeof focus === 'number') document.getElementById(`${id}-value-${focus}`)?.focus();
    };
    box.redraw = draw;
    draw(null);
    return box;
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

  /** A preview cell: cells the settings read as null show as null. */
  function previewCell(v, nulls) {
    if (v === undefined) return h('span', { class: 'null' }, 'missing');
    if (v !== null && nulls.has(v)) return cell(null);
    return cell(v);
  }

  // ---- 3. mapping and preview ---------------------------------------------------------
  function renderMapping() {
    const heading = h('h2', { id: 'step-map' }, h('span', { class: 'step-n' }, '3'), ' Columns');
    if (st.file && st.target === 'create' && st.parsed.header.length) {
      // The server names and types the columns; show what the names will be.
      mapSection.hidden = false;
      const nulls = nullTokens();
      const names = st.parsed.header.map((s) => columnName(s));
      replace(mapSection, heading,
        h('p', { class: 'help' }, `Each of the file's ${st.parsed.header.length} columns becomes a column of the new table, named as below.`),
        tableWrap('Preview of the first rows', h('table', { class: 'list preview', id: 'preview' },
          h('caption', {}, `Preview: the first ${st.parsed.rows.length} rows`),
          h('thead', {}, h('tr', {}, names.map((n) => h('th', { scope: 'col' }, n)))),
          h('tbody', {}, st.parsed.rows.map((r) => h('tr', {}, names.map((n, i) => h('td', {}, previewCell(r[i], nulls)))))))));
      return;
    }
    const cols = targetColumns();
    if (!st.file || !cols.length || !st.parsed.header.length) {
      mapSection.hidden = !st.file;
      replace(mapSection, heading,
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
    const nulls = nullTokens();
    const previewTable = h('table', { class: 'list preview', id: 'preview' },
      h('caption', {}, `Preview: the first ${st.parsed.rows.length} rows as they will load`),
      h('thead', {}, h('tr', {}, mapped.map((n) => h('th', { scope: 'col' }, n)))),
      h('tbody', {}, st.parsed.rows.map((r) => h('tr', {}, mapped.map((n) => {
        const i = st.parsed.header.findIndex((s) => m[s] === n);
        return h('td', {}, previewCell(r[i], nulls));
      })))));
    replace(mapSection, heading,
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
    const oneStep = st.target === 'create';
    if (oneStep && !st.newName) return fail({ message: 'Name the new table.' });
    const m = oneStep ? {} : mapping();
    const used = Object.values(m).filter((v) => v !== IGNORE);
    if (used.some((v, i) => used.indexOf(v) !== i)) return fail({ message: 'Two file columns load into the same table column: fix the mapping.' });
    if (st.target === 'new') {
      const empty = st.columns.find((c) => c.include && c.type === 'enum' && !enumValues(c).length);
      if (empty) return fail({ message: `Give the allowed values of ${empty.name}, or choose another type.` });
    }
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
              if (c.type === 'enum') col.values = enumValues(c);
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
        if (!ctx.signal.aborted) renderTable();
        announce(`Table ${table.name} created.`);
      }
      const table = oneStep ? st.newName : st.table;
      if (!table) throw new ApiError(0, 'validation', 'Choose the table to load.');
      const settings = readingSettings();
      const options = {
        table,
        // The server creates the table from the whole file when it does not exist.
        create_table: oneStep ? 'true' : '',
        mode: value('mode'),
        on_error: value('on_error'),
        dry_run: value('dry_run') ? 'true' : '',
        cleanup_records: value('mode') === 'upsert' && value('cleanup_records') ? 'true' : '',
        max_errors: value('max_errors'),
        delimiter: settings.delimiter,
        null_values: settings.null_values,
        sheet: settings.sheet,
        note: value('note'),
        mapping: oneStep ? '' : explicitMapping(m),
      };
      const progress = bar(0, 'Upload progress');
      const text = h('p', { class: 'muted small' }, `0 of ${bytes(st.file.size)} sent`);
      const abort = h('button', { type: 'button', class: 'btn small' }, 'Cancel upload');
      replace(status, h('div', { class: 'uploading', role: 'group', 'aria-label': 'Upload' },
        h('p', {}, oneStep ? `Uploading ${st.file.name} into a new table ${table}…` : `Uploading ${st.file.name} into ${table}…`),
        progress, text, abort));
      const up = uploadImport(st.file, options, (loaded, total) => {
        setBar(progress, (loaded / total) * 100);
        text.textContent = `${bytes(loaded)} of ${bytes(total)} sent`;
      });
      abort.addEventListener('click', up.abort);
      const imp = await up.promise;
      setBar(progress, 100);
      announce(`Uploaded. Import number ${imp.number} is ${imp.status}.`);
      // Left meanwhile: the import runs on and shows in the list; stay where the user went.
      if (!ctx.signal.aborted) ctx.navigate(`#/imports/${imp.id}`);
    } catch (e) {
      if (ctx.signal.aborted) return;
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

/** A table name from a file's name: "Orders 2024.csv" → "orders_2024", "orders.csv.gz" → "orders". */
function tableNameFor(fileName) {
  return columnName(withoutCompression(fileName).replace(/\.[^.]*$/, '')).replace(/^c_/, 't_');
}

/** An enum's values to send: each as typed (commas and all), blank ones left out. */
function enumValues(c) {
  return c.values.map((v) => v.trim()).filter((v) => v !== '');
}

/**
 * The new table's columns as the server proposes them. The flags come from the proposal's
 * `table` (what it proposes to create): the per-column analysis says what the sample showed
 * (all values distinct, none missing), which holds for a sample, not for the whole file.
 */
function proposedColumns(infer) {
  const table = infer.table && typeof infer.table === 'object' ? infer.table : {};
  const tcols = Array.isArray(table.columns) ? table.columns : [];
  const key = Array.isArray(table.primary_key) ? table.primary_key : (infer.primary_key || []);
  return (infer.columns || []).map((c) => {
    const t = tcols.find((x) => x.name === c.name) || { name: c.name, type: c.type };
    return {
      source: c.source,
      name: t.name,
      type: t.type,
      required: t.required === true,
      unique: t.unique === true,
      key: key.includes(t.name),
      values: t.type === 'enum' && Array.isArray(t.values) ? t.values.map(String) : [],
      include: true,
    };
  });
}

/** A new proposal, with what was edited by hand (in any earlier one) kept. */
function withEdits(proposed, edits) {
  return proposed.map((c) => {
    const mine = edits.get(c.source);
    if (!mine) return c;
    const out = { ...c };
    for (const [field, v] of Object.entries(mine)) out[field] = Array.isArray(v) ? [...v] : v;
    return out;
  });
}
