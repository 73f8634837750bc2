// The dashboard's shell: sign-in state, the hash router (#/imports, #/imports/<id>, #/new,
// #/tables, #/tables/<name>), the navigation, and the workspace's event stream that pages
// subscribe to for live updates.
//
// Each page gets an AbortController's signal, aborted before the next page renders: its
// fetches and event streams end with it, and an answer arriving after the user moved on
// paints nothing. (A cleanup function returned by the render came too late: a page left
// before its render resolved had none yet, and could paint over the next one.)

import { api, atLeast, clearKey, getKey, whoAmI } from './api.js';
import { announce, errorBox, h, replace } from './dom.js';
import { renderSignIn } from './signin.js';
import { renderImports } from './imports.js';
import { renderDetail } from './detail.js';
import { renderUpload } from './upload.js';
import { renderTable, renderTables } from './tables.js';
import { openStream, stopAllWatches } from './sse.js';

const main = document.getElementById('main');
const session = { role: null, name: null };
const listeners = new Set();
let workspaceStream = null;
let page = null; // the current page's AbortController
let firstRender = true;

/**
 * What a page gets: the caller's role, the route's query, the workspace's events, and the
 * page's `signal`, aborted when the page is left. `api` is the API with that signal.
 */
function context(params, signal) {
  return {
    role: session.role,
    can: (role) => atLeast(session.role, role),
    params,
    signal,
    api: (path, options = {}) => api(path, { signal, ...options }),
    navigate: (hash) => { location.hash = hash; },
    /**
     * Calls fn(type, event) for each lifecycle event of the workspace until the page is left;
     * returns an unsubscribe.
     */
    onWorkspaceEvent: (fn) => {
      if (signal.aborted) return () => {};
      const off = () => listeners.delete(fn);
      listeners.add(fn);
      signal.addEventListener('abort', off, { once: true });
      return off;
    },
  };
}

/** Ends the current page: its requests, streams and subscriptions. */
function leavePage() {
  if (page) page.abort();
  page = null;
}

const routes = [
  [/^\/imports\/([^/?]+)$/, (ctx, m) => renderDetail(main, ctx, decodeURIComponent(m[1]))],
  [/^\/imports$/, (ctx) => renderImports(main, ctx)],
  [/^\/new$/, (ctx) => renderUpload(main, ctx)],
  [/^\/tables\/([^/?]+)$/, (ctx, m) => renderTable(main, ctx, decodeURIComponent(m[1]))],
  [/^\/tables$/, (ctx) => renderTables(main, ctx)],
];

function route() {
  if (!session.role) return;
  const raw = location.hash.replace(/^#/, '') || '/imports';
  const [path, query = ''] = raw.split('?');
  leavePage();
  for (const a of document.querySelectorAll('[data-nav]')) {
    const current = path === `/${a.dataset.nav}` || (a.dataset.nav === 'imports' && path.startsWith('/imports'))
      || (a.dataset.nav === 'tables' && path.startsWith('/tables'));
    if (current) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const found = routes.find(([re]) => re.test(path));
  replace(main);
  if (!found) {
    replace(main, h('h1', { tabindex: -1 }, 'Page not found'),
      h('p', {}, 'There is no such page. ', h('a', { href: '#/imports' }, 'Go to the imports.')));
    focusHeading();
    return;
  }
  const [re, render] = found;
  const ctl = new AbortController();
  page = ctl;
  const { signal } = ctl;
  let result;
  try {
    result = render(context(new URLSearchParams(query), signal), path.match(re));
  } catch (e) {
    result = Promise.reject(e);
  }
  Promise.resolve(result).then((done) => {
    // A page may still return a cleanup: it runs when the page is left (at once if it was).
    if (typeof done !== 'function') return;
    if (signal.aborted) done();
    else signal.addEventListener('abort', done, { once: true });
  }).catch((e) => {
    if (signal.aborted || (e && e.name === 'AbortError')) return;
    main.append(errorBox(e, 'This page could not be shown'));
  });
  focusHeading();
}

/** Moves focus to the new page's heading, so keyboard and screen reader users start there. */
function focusHeading() {
  if (firstRender) {
    firstRender = false;
    return;
  }
  const h1 = main.querySelector('h1');
  if (h1) {
    h1.setAttribute('tabindex', '-1');
    h1.focus({ preventScroll: false });
  }
  document.title = `${h1 ? h1.textContent : 'Intake'} · Intake`;
}

function signedIn(who) {
  session.role = who.role;
  session.name = who.name;
  document.getElementById('nav').hidden = false;
  document.getElementById('who').hidden = false;
  replace(document.getElementById('who-role'),
    h('span', { class: 'visually-hidden' }, 'Signed in with a key of role '), who.role,
    who.name ? h('span', { class: 'key-name' }, ` · ${who.name}`) : null);
  for (const el of document.querySelectorAll('[data-role]')) {
    el.hidden = !atLeast(session.role, el.dataset.role);
  }
  workspaceStream = openStream('/v1/stream', {
    onEvent: (type, data) => {
      for (const fn of [...listeners]) fn(type, data);
    },
  });
  route();
}

function signOut(message) {
  clearKey();
  session.role = null;
  leavePage();
  if (workspaceStream) workspaceStream.close();
  workspaceStream = null;
  stopAllWatches();
  listeners.clear();
  document.getElementById('nav').hidden = true;
  document.getElementById('who').hidden = true;
  renderSignIn(main, { message, onSignedIn: signedIn });
  document.title = 'Sign in · Intake';
  if (message) announce(message);
}

async function start() {
  const key = getKey();
  if (!key) {
    signOut(null);
    return;
  }
  replace(main, h('p', { class: 'muted' }, 'Loading…'));
  try {
    signedIn(await whoAmI(key));
  } catch (e) {
    if (e.status === 401) {
      signOut('Your saved key is no longer accepted. Sign in again.');
      return;
    }
    // The server may be restarting: keep the key and offer to try again.
    replace(main, h('h1', {}, 'Intake'), errorBox(e),
      h('button', { type: 'button', class: 'btn', onclick: () => start() }, 'Try again'));
  }
}

window.addEventListener('hashchange', route);
window.addEventListener('intake:unauthenticated', () => {
  if (session.role) signOut('The server no longer accepts this key (it may have been revoked). Sign in again.');
});
document.getElementById('signout').addEventListener('click', () => signOut('Signed out. The key was removed from this tab.'));
start();
