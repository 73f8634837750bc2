// The native API, as the dashboard calls it: the key from the tab's session storage in an
// Authorization header, and errors from the API's envelope as ApiError.

const STORE = 'intake.key';

export function getKey() {
  return sessionStorage.getItem(STORE);
}

export function setKey(key) {
  sessionStorage.setItem(STORE, key);
}

export function clearKey() {
  sessionStorage.removeItem(STORE);
}

/** An error answered by the API ({"error": {"code", "message"}}) or a network failure. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Fired when the server refuses the key (revoked meanwhile): the app signs out. */
function unauthenticated(err) {
  window.dispatchEvent(new CustomEvent('intake:unauthenticated', { detail: err }));
}

async function failure(res) {
  let code = 'http_' + res.status;
  let message = `The server answered ${res.status} ${res.statusText}`;
  try {
    const body = await res.json();
    if (body && body.error) {
      code = body.error.code;
      message = body.error.message;
    }
  } catch {
    // Not the API's envelope (a proxy's page, say): keep the status line.
  }
  return new ApiError(res.status, code, message);
}

function networkError(e) {
  return new ApiError(0, 'network', `Cannot reach the server (${e.message}). Is it running?`);
}

/**
 * Calls the API. `json` is sent as a JSON body; `key` overrides the stored key (sign-in);
 * `raw` returns the Response itself. Resolves to the parsed JSON (null for 204).
 */
export async function api(path, { method = 'GET', json, body, headers = {}, key, raw = false, signal } = {}) {
  const h = { Accept: 'application/json', ...headers };
  const k = key ?? getKey();
  if (k) h.Authorization = `Bearer ${k}`;
  if (json !== undefined) {
    h['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  }
  let res;
  try {
    res = await fetch(path, { method, headers: h, body, signal });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw networkError(e);
  }
  if (!res.ok) {
    const err = await failure(res);
    if (res.status === 401 && key === undefined) unauthenticated(err);
    throw err;
  }
  if (raw) return res;
  if (res.status === 204) return null;
  return res.json();
}

/** A query string from an object, leaving out empty values. */
export function qs(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue;
    p.set(k, typeof v === 'object' ? JSON.stringify(v) : String(v));
  }
  const s = p.toString();
  return s ? `?${s}` : '';
}

/** The role and name of a key, and its workspace (GET /v1/me); a wrong key fails with 401. */
export async function whoAmI(key) {
  const me = await api('/v1/me', { key });
  return { role: me.key.role, name: me.key.name, workspace: me.workspace.name };
}

const RANK = { viewer: 0, member: 1, admin: 2, owner: 3 };

/** Whether a role has at least the rights of another. */
export function atLeast(role, needed) {
  return (RANK[role] ?? 0) >= RANK[needed];
}

/**
 * Uploads a file as an import (multipart, so the import keeps the file's name) with the
 * options in the query string. Reports upload progress; resolves to the new import.
 */
export function uploadImport(file, options, onProgress) {
  const xhr = new XMLHttpRequest();
  const promise = new Promise((resolve, reject) => {
    xhr.open('POST', `/v1/imports${qs(options)}`);
    xhr.setRequestHeader('Authorization', `Bearer ${getKey()}`);
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.responseType = 'text';
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable) onProgress(e.loaded, e.total);
    });
    xhr.addEventListener('load', () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        // Handled below.
      }
      if (xhr.status >= 200 && xhr.status < 300 && body) {
        resolve(body);
      } else {
        const e = body && body.error;
        const err = new ApiError(xhr.status, e ? e.code : `http_${xhr.status}`,
          e ? e.message : `The server answered ${xhr.status}`);
        if (xhr.status === 401) unauthenticated(err);
        reject(err);
      }
    });
    xhr.addEventListener('error', () => reject(networkError(new Error('upload interrupted'))));
    xhr.addEventListener('abort', () => reject(new ApiError(0, 'aborted', 'Upload cancelled.')));
    const form = new FormData();
    form.append('file', file, file.name);
    xhr.send(form);
  });
  return { promise, abort: () => xhr.abort() };
}

/**
 * Downloads the rejected rows of an import as CSV and saves them as a file. Resolves to its
 * size and, when the server kept only some of the rows, its `Intake-Errors-Truncated` header
 * ("10000 of 19748"), else null.
 */
export async function downloadRejected(id, number) {
  const res = await api(`/v1/imports/${encodeURIComponent(id)}/errors?format=csv`, {
    raw: true, headers: { Accept: 'text/csv' },
  });
  const blob = await res.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = `import-${number}-rejected.csv`;
  document.body.append(a);
  a.click();
  a.remove();
  // Late enough for the browser to have started reading it.
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  return { size: blob.size, truncated: res.headers.get('Intake-Errors-Truncated') };
}
