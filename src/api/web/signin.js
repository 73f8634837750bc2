// Sign-in: an API key pasted into the page, checked against the server, then kept in the
// tab's session storage only (closing the tab forgets it).

import { setKey, whoAmI } from './api.js';
import { errorBox, h, noticeBox, replace } from './dom.js';

export function renderSignIn(main, { message, onSignedIn }) {
  const input = h('input', {
    id: 'key', name: 'key', type: 'password', autocomplete: 'off', spellcheck: 'false',
    required: true, 'aria-describedby': 'key-help', placeholder: 'intake_…',
  });
  const show = h('input', { id: 'show-key', type: 'checkbox' });
  show.addEventListener('change', () => { input.type = show.checked ? 'text' : 'password'; });
  const status = h('div', { id: 'signin-status' });
  const submit = h('button', { type: 'submit', class: 'btn primary' }, 'Sign in');
  const form = h('form', { class: 'card signin', novalidate: true },
    h('div', { class: 'field' },
      h('label', { for: 'key' }, 'API key'),
      input,
      h('p', { id: 'key-help', class: 'help' },
        'The key printed when the server first started, or one created with POST /v1/keys. ',
        'It is kept for this browser tab only and sent to this server alone.')),
    h('div', { class: 'check' }, show, h('label', { for: 'show-key' }, 'Show the key')),
    status,
    h('div', { class: 'actions' }, submit));

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const key = input.value.trim();
    if (!key) {
      replace(status, errorBox({ message: 'Paste an API key first.' }));
      input.setAttribute('aria-invalid', 'true');
      input.focus();
      return;
    }
    submit.disabled = true;
    replace(status, h('p', { class: 'muted', role: 'status' }, 'Checking the key…'));
    try {
      const who = await whoAmI(key);
      setKey(key);
      onSignedIn(who);
    } catch (err) {
      submit.disabled = false;
      input.setAttribute('aria-invalid', 'true');
      const text = err.status === 401
        ? `This key was not accepted: ${err.message}. Check that you pasted the whole key (keys created by Intake start with intake_).`
        : err.message;
      replace(status, errorBox({ message: text, code: err.code }, 'Sign-in failed'));
      input.focus();
      input.select();
    }
  });

  replace(main,
    h('h1', {}, 'Sign in to Intake'),
    h('p', { class: 'lead' }, 'Load CSV, TSV, NDJSON and JSON files into typed tables, watch them run, and fix the rows that were rejected.'),
    message ? noticeBox(message, 'info') : null,
    form);
  input.focus();
}
