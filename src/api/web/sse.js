// Server-Sent Events over fetch(): EventSource cannot send an Authorization header, so the
// stream is read as text and parsed here, and a dropped connection is resumed with
// Last-Event-ID. Import streams are shared between the parts of a page that watch the same
// import and capped in number: a browser opens at most six connections to one host over
// HTTP/1.1, and the page still needs some for its other requests.

import { getKey } from './api.js';

/**
 * Opens an event stream. `onEvent(type, data, id)` gets each event with its data parsed as
 * JSON when it is JSON. The stream ends by itself after an `end` event; any other end is
 * retried with growing delays. Aborting `signal` closes it. Returns {close()}.
 */
export function openStream(path, { onEvent, onState = () => {}, onClose = () => {}, lastEventId = null, signal = null }) {
  const ctl = new AbortController();
  let closed = false;
  let lastId = lastEventId;
  let delay = 1000;

  const finish = () => {
    if (closed) return;
    closed = true;
    ctl.abort();
    if (signal) signal.removeEventListener('abort', finish);
    onClose();
  };
  if (signal) {
    if (signal.aborted) {
      // Opened for a page already left: nothing to connect.
      queueMicrotask(finish);
      return { close: finish };
    }
    signal.addEventListener('abort', finish);
  }

  async function connect() {
    while (!closed) {
      let ended = false;
      try {
        const headers = { Accept: 'text/event-stream', Authorization: `Bearer ${getKey()}` };
        if (lastId !== null) headers['Last-Event-ID'] = String(lastId);
        const res = await fetch(path, { headers, signal: ctl.signal, cache: 'no-store' });
        if (res.status === 401 || res.status === 403 || res.status === 404) {
          onState('refused');
          finish();
          return;
        }
        if (!res.ok || !res.body) throw new Error(`status ${res.status}`);
        onState('open');
        delay = 1000;
        ended = await read(res.body, (type, data, id) => {
          if (id !== null) lastId = id;
          onEvent(type, data, id);
        });
      } catch (e) {
        if (closed || e.name === 'AbortError') return;
      }
      if (ended) {
        finish();
        return;
      }
      if (closed) return;
      onState('reconnecting');
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 15000);
    }
  }

  connect();
  return { close: finish };
}

/** Reads an SSE body until it closes; resolves true when an `end` event was seen. */
async function read(body, dispatch) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let type = '';
  let data = [];
  let id = null;
  let sawEnd = false;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return sawEnd;
    buffer += value;
    let nl;
    while ((nl = buffer.search(/\r\n|\r|\n/)) >= 0) {
      // A lone \r at the end of a chunk may be the first half of \r\n: wait for more.
      if (buffer[nl] === '\r' && nl === buffer.length - 1) break;
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + (buffer.startsWith('\r\n', nl) ? 2 : 1));
      if (line === '') {
        if (data.length) {
          const text = data.join('\n');
          let parsed = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // Plain text data stays text.
          }
          const t = type || 'message';
          dispatch(t, parsed, id);
          if (t === 'end') sawEnd = true;
        }
        type = '';
        data = [];
        id = null;
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let val = colon < 0 ? '' : line.slice(colon + 1);
      if (val.startsWith(' ')) val = val.slice(1);
      if (field === 'event') type = val;
      else if (field === 'data') data.push(val);
      else if (field === 'id') id = val;
    }
  }
}

const MAX_IMPORT_STREAMS = 3;
const watches = new Map();
const waiting = [];
let active = 0;

/**
 * Watches an import: `handler(type, data, id)` gets its `progress`, lifecycle and `end`
 * events. Watchers of one import share a connection. Returns a function that stops watching;
 * aborting `signal` (the page's, when it is left) stops it too.
 * `first` puts the import ahead of others waiting for a connection (the page's main one).
 */
export function watchImport(id, handler, { first = false, lastEventId = null, signal = null } = {}) {
  if (signal && signal.aborted) return () => {};
  let w = watches.get(id);
  if (!w) {
    w = { id, handlers: new Set(), stream: null, lastEventId };
    watches.set(id, w);
    if (first) waiting.unshift(w);
    else waiting.push(w);
  } else if (first && !w.stream) {
    waiting.splice(waiting.indexOf(w), 1);
    waiting.unshift(w);
  }
  w.handlers.add(handler);
  pump();
  const unwatch = () => {
    if (signal) signal.removeEventListener('abort', unwatch);
    if (!w.handlers.delete(handler)) return;
    if (w.handlers.size === 0) stop(w);
  };
  if (signal) signal.addEventListener('abort', unwatch);
  return unwatch;
}

function stop(w) {
  if (watches.get(w.id) === w) watches.delete(w.id);
  const i = waiting.indexOf(w);
  if (i >= 0) waiting.splice(i, 1);
  if (w.stream) w.stream.close();
}

function pump() {
  while (active < MAX_IMPORT_STREAMS && waiting.length) {
    const w = waiting.shift();
    active += 1;
    w.stream = openStream(`/v1/imports/${encodeURIComponent(w.id)}/stream`, {
      lastEventId: w.lastEventId,
      onEvent: (type, data, id) => {
        for (const f of [...w.handlers]) f(type, data, id);
      },
      onClose: () => {
        active -= 1;
        w.stream = null;
        if (watches.get(w.id) === w) watches.delete(w.id);
        // Let the handlers know the import will not say more (ended or refused).
        for (const f of [...w.handlers]) f('closed', null, null);
        pump();
      },
    });
  }
}

/** Stops every import watch (signing out). */
export function stopAllWatches() {
  for (const w of [...watches.values()]) stop(w);
  waiting.length = 0;
}
