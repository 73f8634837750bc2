// Reads the first rows of a file in the browser, for the mapping preview. The server reads
// the whole file with its own reader; this only has to be right for the first rows.

/** How much of a file is read for the preview and sent for schema inference. */
export const SAMPLE_BYTES = 256 * 1024;

/**
 * The first bytes of a file as text, cut after the last complete line when the file is longer.
 * A workbook, a zip or a zstd file cannot be read here: `binary` says so, and the server's
 * schema proposal brings its first rows as text instead.
 */
export async function sample(file) {
  if (await isContainer(file)) return { text: '', truncated: true, binary: true };
  const { bytes, truncated } = await isGzip(file) ? await inflatedHead(file) : {
    bytes: new Uint8Array(await file.slice(0, SAMPLE_BYTES).arrayBuffer()),
    truncated: file.size > SAMPLE_BYTES,
  };
  let text = new TextDecoder().decode(bytes);
  if (truncated) {
    const cut = Math.max(text.lastIndexOf('\n'), 0);
    text = text.slice(0, cut + 1);
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  return { text, truncated };
}

/** Whether a file starts like a zip (xlsx, ods), an OLE file (xls) or a zstd stream. */
async function isContainer(file) {
  const b = new Uint8Array(await file.slice(0, 8).arrayBuffer());
  const starts = (magic) => magic.every((v, i) => b[i] === v);
  return starts([0x50, 0x4b, 0x03, 0x04]) || starts([0x28, 0xb5, 0x2f, 0xfd])
    || starts([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1]);
}

/** Whether a file starts with gzip's magic bytes (the server inflates such uploads). */
async function isGzip(file) {
  const head = new Uint8Array(await file.slice(0, 2).arrayBuffer());
  return head.length === 2 && head[0] === 0x1f && head[1] === 0x8b;
}

/** The first SAMPLE_BYTES of a gzip file's data, inflated as it is read, and no more. */
async function inflatedHead(file) {
  const reader = file.stream().pipeThrough(new DecompressionStream('gzip')).getReader();
  const out = new Uint8Array(SAMPLE_BYTES);
  let filled = 0;
  let truncated = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const room = SAMPLE_BYTES - filled;
      out.set(value.subarray(0, room), filled);
      filled += Math.min(room, value.length);
      if (value.length > room) { truncated = true; break; }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
  return { bytes: out.subarray(0, filled), truncated };
}

/** A file's name without the extension of its compression: `orders.csv.zst` → `orders.csv`. */
export function withoutCompression(name) {
  return name.replace(/\.(gz|zst|zstd|zip)$/i, '');
}

/** The format a file's name suggests (`orders.csv.gz` is CSV), or null. */
export function formatFromName(name) {
  const ext = (withoutCompression(name).split('.').pop() || '').toLowerCase();
  return { csv: 'csv', tsv: 'tsv', tab: 'tsv', ndjson: 'ndjson', jsonl: 'ndjson', json: 'json' }[ext] || null;
}

/** A guess at the format and delimiter from the text itself. */
export function sniff(text) {
  const start = text.trimStart();
  if (start.startsWith('[')) return { format: 'json', delimiter: null };
  if (start.startsWith('{')) return { format: 'ndjson', delimiter: null };
  const first = text.split(/\r?\n/, 1)[0];
  let best = ',';
  let bestCount = 0;
  for (const d of [',', '\t', ';', '|']) {
    const n = first.split(d).length - 1;
    if (n > bestCount) {
      best = d;
      bestCount = n;
    }
  }
  return { format: best === '\t' ? 'tsv' : 'csv', delimiter: best };
}

/**
 * The header and first rows (arrays of strings, or null for absent values) of a sample.
 * `complete` says the text is the whole file, so its last record is whole too.
 */
export function preview(text, format, delimiter, complete, maxRows = 8) {
  if (format === 'ndjson') return objects(ndjson(text, maxRows));
  if (format === 'json') return objects(jsonArray(text, maxRows));
  const d = delimiter || (format === 'tsv' ? '\t' : ',');
  const records = delimited(text, d, maxRows + 1, complete);
  const [header = [], ...rows] = records;
  return { header, rows };
}

/** Records of delimited text; a quoted field may span lines. */
export function delimited(text, delimiter, maxRecords, complete = true) {
  const out = [];
  let rec = [];
  let field = '';
  let quoted = false;
  let i = 0;
  const n = text.length;
  while (i < n && out.length < maxRecords) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
      } else {
        field += c;
      }
      i += 1;
      continue;
    }
    if (c === '"' && field === '') {
      quoted = true;
    } else if (c === delimiter) {
      rec.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      rec.push(field);
      field = '';
      out.push(rec);
      rec = [];
      if (c === '\r' && text[i + 1] === '\n') i += 1;
    } else {
      field += c;
    }
    i += 1;
  }
  // A last record without a newline is whole only if the sample is the whole file.
  if (out.length < maxRecords && complete && !quoted && (field !== '' || rec.length)) {
    rec.push(field);
    out.push(rec);
  }
  return out;
}

function ndjson(text, max) {
  const out = [];
  for (const line of text.split(/\r?\n/)) {
    if (out.length >= max) break;
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line));
    } catch {
      out.push({ '(unreadable line)': line.slice(0, 200) });
    }
  }
  return out;
}

/** The first objects of a JSON array, even when the sample ends mid-array. */
function jsonArray(text, max) {
  try {
    const all = JSON.parse(text);
    if (Array.isArray(all)) return all.slice(0, max);
    if (all && Array.isArray(all.records)) return all.records.slice(0, max);
    return [all];
  } catch {
    // Cut mid-array: scan the top-level objects one by one.
  }
  const out = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length && out.length < max; i += 1) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i += 1;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '{') {
      if (depth === 1) start = i;
      depth += 1;
    } else if (c === '}') {
      depth -= 1;
      if (depth === 1 && start >= 0) {
        try {
          out.push(JSON.parse(text.slice(start, i + 1)));
        } catch {
          // Skip an object this scanner misread.
        }
        start = -1;
      }
    } else if (c === '[' && depth === 0) depth = 1;
  }
  return out;
}

function objects(list) {
  const header = [];
  for (const o of list) {
    if (o && typeof o === 'object' && !Array.isArray(o)) {
      for (const k of Object.keys(o)) if (!header.includes(k)) header.push(k);
    }
  }
  const rows = list.map((o) => header.map((k) => {
    const v = o && typeof o === 'object' ? o[k] : undefined;
    if (v === undefined || v === null) return null;
    return typeof v === 'object' ? JSON.stringify(v) : String(v);
  }));
  return { header, rows };
}

/**
 * The column name the server derives from a source header ("Full Name" → "full_name"), as
 * in model/infer.rs: unmapped fields match a column of that name.
 */
export function columnName(source) {
  let out = '';
  let separated = false;
  for (const c of source) {
    if (/^[A-Za-z0-9]$/.test(c)) {
      if (separated && out) out += '_';
      separated = false;
      out += c.toLowerCase();
    } else {
      separated = true;
    }
  }
  if (!out) return 'column';
  if (!/^[a-z]/.test(out) || out.startsWith('intake')) out = `c_${out}`;
  return out.slice(0, 48).replace(/_+$/, '');
}
