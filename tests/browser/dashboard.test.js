// The dashboard in a real browser: Debian's Chromium driven by playwright-core against the
// real server binary (target/debug/intake) on a free port with a fresh data directory.
// The steps run in order and share one server, as a new user's session would:
// sign in, create a table from an inferred schema, upload a file with invalid rows, watch it
// reach 100 %, read and download the rejected rows, roll back, and check what each role sees.
// Screenshots of every page go to tests/browser/screenshots/ (not committed).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import { mkdtempSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const binary = process.env.INTAKE_BIN || path.join(repo, 'target/debug/intake');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const shots = path.join(here, 'screenshots');
const KEY = 'intake_browser_test_owner_key_0001';
const ROWS = 20000;
const INVALID_RATE = 0.01;
const BIG_ROWS = 150000;
// Flags for a closed network: without the background-networking ones Chromium keeps trying
// to reach Google's hosts.
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let tmp;
let server;
let base;
let browser;
let context;
let page;
let dataFile;
let bigFile;
let manifestLines;
let rejected;
let importId;
const problems = [];

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitForServer(url, ms = 30000) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.ok) return;
    } catch {
      // Not listening yet.
    }
    if (server.exitCode !== null) throw new Error(`the server exited with ${server.exitCode}: see ${tmp}/server.log`);
    if (Date.now() > deadline) throw new Error('the server did not start in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The server's API, from the test (setting up other keys). */
async function apiCall(method, route, body) {
  const res = await fetch(`${base}${route}`, {
    method,
    headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, body: await res.json() };
}

async function shot(name, p = page, fullPage = true) {
  await p.screenshot({ path: path.join(shots, `${name}.png`), fullPage });
}

/** A small CSV reader for the downloaded file (quotes, doubled quotes, newlines in quotes). */
function readCsv(text) {
  const out = [];
  let rec = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i += 1; } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { rec.push(field); field = ''; } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i += 1;
      rec.push(field); out.push(rec); rec = []; field = '';
    } else field += c;
  }
  if (field !== '' || rec.length) { rec.push(field); out.push(rec); }
  return out;
}

async function signIn(key) {
  await page.goto(base + '/');
  await page.getByLabel('API key').fill(key);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

before(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'intake-browser-'));
  mkdirSync(shots, { recursive: true });
  dataFile = path.join(tmp, 'orders.csv');
  execFileSync('python3', [path.resolve(repo, '../shared/bench/gen.py'), '--rows', String(ROWS),
    '--invalid-rate', String(INVALID_RATE), '--out', dataFile], { stdio: 'ignore' });
  // The manifest lists each invalid record with the physical line where it starts.
  const manifest = readFileSync(`${dataFile}.invalid.tsv`, 'utf8').trim().split('\n').map((l) => l.split('\t'));
  const lineCol = manifest[0].indexOf('line');
  manifestLines = manifest.slice(1).map((r) => r[lineCol]).sort();

  // A larger file, long enough to watch an import run in the list.
  bigFile = path.join(tmp, 'big.csv');
  execFileSync('python3', [path.resolve(repo, '../shared/bench/gen.py'), '--rows', String(BIG_ROWS),
    '--invalid-rate', '0.001', '--seed', '7', '--no-manifest', '--out', bigFile], { stdio: 'ignore' });

  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const log = openSync(path.join(tmp, 'server.log'), 'w');
  server = spawn(binary, ['serve', '--bind', `127.0.0.1:${port}`, '--data-dir', path.join(tmp, 'data')], {
    env: {
      ...process.env, INTAKE_BOOTSTRAP_KEY: KEY, RUST_LOG: process.env.RUST_LOG || 'info',
      // The big import (and only it: the others have fewer batches) waits after its 10th
      // batch until the test creates the release file, so that its bar is seen mid-way.
      INTAKE_TEST_PAUSE_AFTER_BATCH: '10', INTAKE_TEST_PAUSE_RELEASE: path.join(tmp, 'release'),
    },
    stdio: ['ignore', log, log],
  });
  await waitForServer(base);

  browser = await chromium.launch({ executablePath: chromiumPath, args: ARGS, headless: true });
  context = await browser.newContext({ viewport: { width: 1366, height: 860 }, acceptDownloads: true });
  page = await context.newPage();
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    // A refused key (401) and the role probe of a viewer key (403 on /v1/keys) are logged by
    // the browser as failed resources: both expected. So is a 404 from a server that has no
    // error summary yet (the page then shows none).
    if (m.type() !== 'error' || /status of 40[13]/.test(m.text())) return;
    if (/status of 404/.test(m.text()) && /\/errors\/summary$/.test(m.location().url || '')) return;
    problems.push(`console: ${m.text()}`);
  });
});

after(async () => {
  if (browser) await browser.close();
  if (server && server.exitCode === null) {
    server.kill('SIGTERM');
    await new Promise((r) => server.once('exit', r));
  }
  if (tmp && !process.env.KEEP_TMP) rmSync(tmp, { recursive: true, force: true });
});

test('a wrong key gets a clear message and stays on the sign-in page', async () => {
  await page.goto(base + '/');
  await assert.doesNotReject(page.getByRole('heading', { name: 'Sign in to Intake' }).waitFor());
  await shot('01-sign-in');
  await signIn('intake_not_a_real_key_at_all');
  const alert = page.getByRole('alert');
  await alert.waitFor();
  assert.match(await alert.textContent(), /This key was not accepted: invalid, revoked or expired API key/);
  assert.equal(await page.getByLabel('API key').getAttribute('aria-invalid'), 'true');
  await shot('02-sign-in-wrong-key');
});

test('the owner signs in and sees an empty imports list with every button', async () => {
  // By keyboard alone: the key field has focus, Enter submits.
  await page.goto(base + '/');
  await page.keyboard.type(KEY);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Imports' }).waitFor();
  assert.match(await page.locator('#who-role').textContent(), /owner/);
  assert.ok(await page.getByRole('link', { name: 'New import' }).first().isVisible());
  await page.getByText('No imports yet.').waitFor();
  // The key lives in this tab's session storage only.
  const stored = await page.evaluate(() => [sessionStorage.getItem('intake.key'), localStorage.length]);
  assert.deepEqual(stored, [KEY, 0]);
  await shot('03-imports-empty');
});

test('a table is created from the inferred schema with edited types, and the file uploads', async () => {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'New import' }).click();
  await page.getByRole('heading', { name: 'New import' }).waitFor();
  await page.setInputFiles('#file', dataFile);
  await page.locator('#new-table-name').waitFor();
  assert.equal(await page.locator('#new-table-name').inputValue(), 'orders');
  // A new table is made by the server from the whole file unless the schema is checked here.
  assert.ok(await page.locator('#target-create').isChecked());
  await page.locator('#target-new').check();
  assert.equal(await page.locator('#new-table-name').inputValue(), 'orders');
  // The sample holds a few bad values, so some columns are proposed as strings: make them strict.
  await page.getByLabel('Type of email').selectOption('email');
  await page.getByLabel('Type of amount').selectOption('decimal');
  await page.getByLabel('Type of created_at').selectOption('datetime');
  // Every field but notes is required in this file: said here, as a sample cannot tell.
  for (const c of ['email', 'full_name', 'country', 'amount', 'quantity', 'active', 'created_at']) {
    await page.getByLabel(`${c} is required`).check();
  }
  // Unique in the sample is not unique in the whole file: the proposal leaves it unchecked.
  assert.equal(await page.getByLabel('email is unique').isChecked(), false);
  // The key, whether or not the proposal offers it.
  await page.getByLabel('id is part of the primary key').check();
  assert.ok(await page.getByLabel('id is required').isChecked(), 'a key column is required');
  // The mapping preview shows the first rows parsed in the browser.
  const preview = page.locator('#preview');
  await preview.waitFor();
  assert.equal(await preview.locator('tbody tr').count(), 8);
  assert.equal(await preview.locator('tbody tr').first().locator('td').first().textContent(), '1');
  assert.equal(await page.locator('select[data-source="notes"]').inputValue(), 'notes');
  await shot('04-new-import');

  await page.getByRole('button', { name: 'Start import' }).click();
  await page.waitForURL(/#\/imports\/[0-9a-f-]{36}$/, { timeout: 60000 });
  importId = page.url().split('/').pop();
  const table = await apiCall('GET', '/v1/tables/orders');
  assert.equal(table.status, 200);
  assert.deepEqual(table.body.columns.map((c) => c.type),
    ['integer', 'email', 'string', 'string', 'decimal', 'integer', 'boolean', 'datetime', 'string']);
  assert.deepEqual(table.body.primary_key, ['id']);
});

test('the progress bar reaches 100 % and the rows are counted per table', async () => {
  await page.getByRole('heading', { name: 'Import #1' }).waitFor();
  // Record every value the bar shows until the import ends.
  await page.evaluate(() => {
    const p = document.querySelector('#import-progress progress');
    window.seen = [p.value];
    new MutationObserver(() => window.seen.push(p.value)).observe(p, { attributes: true });
  });
  await page.waitForFunction(() => document.querySelector('#import-progress progress').value === 100, null, { timeout: 120000 });
  await page.locator('#import-status .chip[data-status="partially_complete"]').waitFor();
  const seen = await page.evaluate(() => window.seen);
  assert.deepEqual([...seen].sort((a, b) => a - b), seen, 'the bar never goes back');
  assert.equal(await page.locator('#import-progress .bar-text').textContent(), '100 %');
  const invalid = Math.round(ROWS * INVALID_RATE);
  const counts = page.locator('#counts tbody tr').first();
  assert.equal(await counts.locator('td[data-label="invalid"]').textContent(), invalid.toLocaleString('en-US'));
  assert.equal(await counts.locator('td[data-label="created"]').textContent(), (ROWS - invalid).toLocaleString('en-US'));
  await page.locator('#timeline li', { hasText: 'Completed with rejected rows' }).waitFor();
  await shot('05-import-detail');
});

test('the rejected rows are listed with paging and download as CSV', async () => {
  const errors = page.locator('#errors');
  await errors.getByRole('heading', { name: /Rejected rows \(200\)/ }).waitFor();
  const rows = errors.locator('table.errors tbody tr');
  assert.equal(await rows.count(), 25);
  const first = rows.first();
  assert.equal(await first.locator('td[data-label="Line"]').textContent(), manifestLines.map(Number).sort((a, b) => a - b)[0].toLocaleString('en-US'));
  assert.ok((await first.locator('td[data-label="Code"]').textContent()).length > 0);
  assert.ok((await first.locator('td[data-label="Original row"]').textContent()).includes('email: '));
  await errors.locator('#errors-title').scrollIntoViewIfNeeded();
  await shot('06-rejected-rows');
  await page.locator('#errors-next').click();
  await errors.getByText('Rows 26–50').waitFor();
  await page.locator('#errors-prev').click();
  await errors.getByText('Rows 1–25').waitFor();

  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Download rejected rows (CSV)' }).click(),
  ]);
  assert.equal(download.suggestedFilename(), 'import-1-rejected.csv');
  const csv = readCsv(readFileSync(await download.path(), 'utf8'));
  const header = csv[0];
  assert.deepEqual(header, ['id', 'email', 'full_name', 'country', 'amount', 'quantity', 'active', 'created_at', 'notes', 'line', 'error']);
  const body = csv.slice(1).filter((r) => r.length > 1);
  assert.equal(body.length, Math.round(ROWS * INVALID_RATE));
  const lines = body.map((r) => r[header.indexOf('line')]).sort();
  assert.deepEqual(lines, manifestLines, 'the rejected rows are exactly the invalid ones');
  await page.getByText(/Saved import-1-rejected\.csv/).waitFor();
  rejected = csv;
});

test('the rejected rows, fixed, load from the "Upload a corrected file" button', async () => {
  // Fix each row's named column as a person would in a spreadsheet; keep the added line and
  // error columns, which the mapping leaves out.
  const [header, ...body] = rejected;
  const fixes = {
    email: (r) => `fixed${r[0]}@example.com`, amount: () => '1.00', created_at: () => '2024-01-01T00:00:00Z',
    country: () => 'US', quantity: () => '1', active: () => 'true', full_name: () => 'Fixed Name',
  };
  const fixed = body.filter((r) => r.length > 1).map((r) => {
    const column = r[header.indexOf('error')].split(':')[0];
    const out = [...r];
    out[header.indexOf(column)] = fixes[column](r);
    return out;
  });
  const quote = (v) => (/[",\n\r]/.test(v) ? `"${v.replaceAll('"', '""')}"` : v);
  const fixedFile = path.join(tmp, 'import-1-fixed.csv');
  writeFileSync(fixedFile, [header, ...fixed].map((r) => r.map(quote).join(',')).join('\n') + '\n');

  await page.getByRole('link', { name: 'Upload a corrected file' }).click();
  await page.getByRole('heading', { name: 'New import' }).waitFor();
  await page.setInputFiles('#file', fixedFile);
  await page.locator('#preview').waitFor();
  assert.equal(await page.locator('#table-select').inputValue(), 'orders');
  assert.equal(await page.locator('select[data-source="line"]').inputValue(), '');
  assert.equal(await page.locator('select[data-source="error"]').inputValue(), '');
  await page.getByRole('button', { name: 'Start import' }).click();
  await page.getByRole('heading', { name: 'Import #2' }).waitFor();
  await page.locator('#import-status .chip[data-status="complete"]').waitFor({ timeout: 60000 });
  const counts = page.locator('#counts tbody tr').first();
  assert.equal(await counts.locator('td[data-label="created"]').textContent(), '200');
  assert.equal(await counts.locator('td[data-label="warnings"]').textContent(), '0');
  await page.getByText('No row was rejected.').waitFor();
  await shot('07-corrected-upload');
});

test('the tables page shows the schema and the first rows', async () => {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Tables' }).click();
  await page.getByRole('link', { name: 'orders' }).click();
  await page.getByRole('heading', { name: 'orders' }).waitFor();
  assert.equal(await page.locator('#row-count').textContent(), ROWS.toLocaleString('en-US'));
  assert.equal(await page.locator('table.schema tbody tr').count(), 9);
  await page.locator('table.records tbody tr').first().waitFor();
  assert.equal(await page.locator('table.records tbody tr').count(), 50);
  await shot('08-table');
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Imports' }).click();
  const row = page.locator(`tr[data-id="${importId}"]`);
  await row.waitFor();
  assert.equal(await row.locator('.chip').textContent(), 'partially complete');
  await shot('09-imports-list');
});

test('a rollback, once confirmed, shows the import rolled back', async () => {
  await page.goto(`${base}/#/imports/${importId}`);
  const button = page.getByRole('button', { name: 'Roll back' });
  await button.click();
  const dialog = page.getByRole('dialog');
  await dialog.waitFor();
  assert.match(await dialog.textContent(), /19,800 rows it created are deleted/);
  await shot('10-rollback-confirm', page, false);
  // Cancelling the dialog changes nothing.
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  assert.equal(await page.locator('#import-status .chip').getAttribute('data-status'), 'partially_complete');
  await button.click();
  await page.getByRole('dialog').getByRole('button', { name: 'Roll back' }).click();
  await page.locator('#import-status .chip[data-status="rolled_back"]').waitFor({ timeout: 60000 });
  await page.locator('#timeline li', { hasText: 'Rolled back' }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Roll back' }).count(), 0);
  const after_ = await apiCall('GET', '/v1/tables/orders');
  // What is left is the corrected rows of import #2.
  assert.equal(after_.body.row_count, 200);
  await shot('11-rolled-back');
});

test('the imports list shows a new import and follows it live, and filters by status', async () => {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Imports' }).click();
  await page.locator(`tr[data-id="${importId}"]`).waitFor();
  // Started elsewhere (the API): the workspace stream brings it into the list, then its own
  // stream moves its bar, with no reload.
  const body = readFileSync(bigFile);
  const res = await fetch(`${base}/v1/imports?table=orders&mode=upsert`, {
    method: 'POST', headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'text/csv' }, body,
  });
  assert.equal(res.status, 202);
  const big = await res.json();
  const row = page.locator(`tr[data-id="${big.id}"]`);
  await row.waitFor();
  await page.evaluate((id) => {
    window.rowSeen = [];
    window.rateSeen = [];
    const tick = () => {
      const tr = document.querySelector(`tr[data-id="${id}"]`);
      if (tr) {
        window.rowSeen.push(tr.querySelector('progress').value);
        const rate = tr.querySelector('.rate').textContent;
        if (rate) window.rateSeen.push(rate);
      }
      if (!window.rowSeen.includes(100)) setTimeout(tick, 50);
    };
    tick();
  }, big.id);
  // Held after its 10th batch: the bar shows where it is, and moves on once released.
  await page.waitForFunction(() => window.rowSeen.some((v) => v > 0 && v < 100), null, { timeout: 60000 });
  writeFileSync(path.join(tmp, 'release'), '');
  await row.locator('.chip[data-status="partially_complete"]').waitFor({ timeout: 120000 });
  await page.waitForFunction(() => window.rowSeen.includes(100));
  const seen = await page.evaluate(() => window.rowSeen);
  assert.ok(seen.some((v) => v > 0 && v < 100), `the bar moved through intermediate values: ${[...new Set(seen)]}`);
  const rates = await page.evaluate(() => window.rateSeen);
  assert.ok(rates.some((r) => /rows\/s/.test(r)), `rows per second were shown: ${[...new Set(rates)]}`);
  assert.equal(await page.locator('h1').textContent(), 'Imports', 'no navigation happened');

  await page.getByLabel('Status').selectOption('rolled_back');
  await page.waitForURL(/status=rolled_back/);
  await page.locator(`tr[data-id="${importId}"]`).waitFor();
  assert.equal(await page.locator('table.imports tbody tr').count(), 1);
  await page.getByLabel('Status').selectOption('failed');
  await page.getByText('No import matches these filters.').waitFor();
  await page.getByRole('button', { name: 'Clear filters' }).click();
  await page.locator(`tr[data-id="${big.id}"]`).waitFor();
  await shot('12-imports-live');
});

test('a viewer key sees the imports but no button that changes anything', async () => {
  const created = await apiCall('POST', '/v1/keys', { name: 'dashboard viewer', role: 'viewer' });
  assert.equal(created.status, 201);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in to Intake' }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('intake.key')), null);
  await signIn(created.body.key);
  await page.getByRole('heading', { name: 'Imports' }).waitFor();
  assert.match(await page.locator('#who-role').textContent(), /viewer/);
  assert.equal(await page.getByRole('link', { name: 'New import' }).count(), 0);
  await page.locator(`tr[data-id="${importId}"] a`).click();
  await page.getByRole('heading', { name: 'Import #1' }).waitFor();
  assert.equal(await page.getByRole('button', { name: /Roll back|Cancel import/ }).count(), 0);
  await shot('13-viewer-detail');
  await page.getByRole('button', { name: 'Sign out' }).click();
});

test('the pages fit a phone screen', async () => {
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
  const p = await phone.newPage();
  p.on('pageerror', (e) => problems.push(`phone page error: ${e.message}`));
  await p.goto(base + '/');
  await p.getByLabel('API key').fill(KEY);
  await p.getByRole('button', { name: 'Sign in' }).click();
  await p.locator(`tr[data-id="${importId}"]`).waitFor();
  const overflow = () => p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(await overflow() <= 0, 'the imports list does not scroll sideways');
  await shot('14-phone-imports', p);
  await p.goto(`${base}/#/imports/${importId}`);
  await p.locator('#import-status .chip[data-status="rolled_back"]').waitFor();
  assert.ok(await overflow() <= 0, 'the import page does not scroll sideways');
  await shot('15-phone-detail', p);
  await p.goto(`${base}/#/new`);
  await p.setInputFiles('#file', dataFile);
  await p.locator('#preview').waitFor();
  assert.ok(await overflow() <= 0, 'the new import page does not scroll sideways');
  await shot('16-phone-new-import', p);
  await phone.close();
});

// ---- Issue 12: the schema editor, the proposal's settings, the one-step path, the error
// summary, and pages left before they load. These run after the session above (their imports
// come after its numbered ones) and sign in again.

/** Signs in as the owner on the shared page, unless already signed in. */
async function ownerSignedIn() {
  await page.goto('about:blank');
  await page.goto(`${base}/#/imports`);
  await page.waitForFunction(() => /^(Sign in to Intake|Imports)$/.test(document.querySelector('main h1')?.textContent || ''));
  if (await page.getByRole('heading', { name: 'Sign in to Intake' }).isVisible()) {
    await page.getByLabel('API key').fill(KEY);
    await page.getByRole('button', { name: 'Sign in' }).click();
  }
  await page.getByRole('heading', { name: 'Imports' }).waitFor();
}

/**
 * Makes the page see an import as `patch(import)` returns it, from GET and from the `end` event
 * of its stream (a contract the server in this tree may not answer yet).
 */
async function patchImport(id, patch) {
  await page.route(`**/v1/imports/${id}`, async (route) => {
    const res = await route.fetch();
    await route.fulfill({ response: res, json: patch(await res.json()) });
  });
  await page.route(`**/v1/imports/${id}/stream`, async (route) => {
    const res = await route.fetch();
    const blocks = (await res.text()).split('\n\n').map((b) => {
      if (!/^event: end$/m.test(b)) return b;
      return b.replace(/^data: (.*)$/m, (_, json) => `data: ${JSON.stringify(patch(JSON.parse(json)))}`);
    });
    await route.fulfill({ response: res, body: blocks.join('\n\n') });
  });
}

/** An import run through the API from CSV text; resolves once it has ended. */
async function importThroughApi(table, csv, options = {}) {
  const res = await fetch(`${base}/v1/imports${'?' + new URLSearchParams({ table, ...options })}`, {
    method: 'POST', headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'text/csv' }, body: csv,
  });
  const body = await res.json();
  assert.equal(res.status, 202, JSON.stringify(body));
  for (let i = 0; i < 600; i += 1) {
    const got = await apiCall('GET', `/v1/imports/${body.id}`);
    if (!['new', 'queued', 'processing'].includes(got.body.status)) return got.body;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the import did not end');
}

test('an enum value holding a comma survives the schema editor into the created table', async () => {
  await ownerSignedIn();
  // Fewer rows than a sample needs to propose an enum: the values are typed by hand.
  const rows = 16;
  const names = ['Smith, John', 'Doe, Jane'];
  const csv = ['id,customer,score']
    .concat(Array.from({ length: rows }, (_, i) => `${i + 1},"${names[i % 2]}",${(i + 1) * 7}`)).join('\n') + '\n';
  const file = path.join(tmp, 'people.csv');
  writeFileSync(file, csv);
  await page.goto(`${base}/#/new`);
  await page.setInputFiles('#file', file);
  await page.locator('#target-create:checked').waitFor();
  await page.locator('#target-new').check();
  assert.equal(await page.locator('#new-table-name').inputValue(), 'people');
  // Distinct in the sample is not unique in the table: nothing is checked the proposal did not say.
  assert.equal(await page.getByLabel('score is unique').isChecked(), false);
  assert.equal(await page.getByLabel('customer is unique').isChecked(), false);
  assert.equal(await page.getByLabel('Type of customer').inputValue(), 'string', 'no enum guessed from the sample');

  await page.getByLabel('Type of customer').selectOption('enum');
  const first = page.getByLabel('Value 1 of customer', { exact: true });
  await first.fill('Smith, John');
  // Enter adds the next value (it does not submit the form).
  await first.press('Enter');
  const second = page.getByLabel('Value 2 of customer', { exact: true });
  assert.ok(await second.evaluate((el) => el === document.activeElement), 'the new value has focus');
  await second.fill('Doe, Jane');
  // A value added and removed again leaves no trace.
  await page.getByRole('button', { name: 'Add a value to customer' }).click();
  await page.getByLabel('Value 3 of customer', { exact: true }).fill('Someone, Else');
  await page.getByRole('button', { name: 'Remove value 3 of customer', exact: true }).click();
  assert.equal(await page.locator('#col-1-values input.enum-value').count(), 2);
  await shot('17-enum-values');

  await page.getByRole('button', { name: 'Start import' }).click();
  await page.waitForURL(/#\/imports\/[0-9a-f-]{36}$/, { timeout: 60000 });
  const table = await apiCall('GET', '/v1/tables/people');
  assert.equal(table.status, 200);
  const customer = table.body.columns.find((c) => c.name === 'customer');
  assert.equal(customer.type, 'enum');
  assert.deepEqual([...customer.values].sort(), ['Doe, Jane', 'Smith, John']);
  assert.equal(table.body.columns.find((c) => c.name === 'score').unique, false);
  await page.locator('#import-status .chip[data-status="complete"]').waitFor({ timeout: 60000 });
  const loaded = await apiCall('GET', '/v1/tables/people');
  assert.equal(loaded.body.row_count, rows, 'no row was lost to a split value');
});

test('changing the cells that mean null, or the delimiter, proposes the schema again', async () => {
  await ownerSignedIn();
  const csv = ['id,amount']
    .concat(Array.from({ length: 40 }, (_, i) => `${i + 1},${i % 5 === 1 ? 'NA' : `${i + 1}.25`}`)).join('\n') + '\n';
  const file = path.join(tmp, 'measures.csv');
  writeFileSync(file, csv);
  await page.goto(`${base}/#/new`);
  await page.setInputFiles('#file', file);
  await page.locator('#target-create:checked').waitFor();
  await page.locator('#target-new').check();
  // NA is text until it is said to mean null.
  assert.equal(await page.getByLabel('Type of amount').inputValue(), 'string');
  // An edit by hand is kept when the schema is proposed again.
  await page.getByLabel('Column name for id').fill('measure_id');
  await page.getByLabel('Column name for id').press('Tab');

  const asked = page.waitForRequest((r) => r.url().includes('/v1/schema/infer') && new URL(r.url()).searchParams.get('null_values') === 'NA');
  await page.locator('#null_values').fill('NA');
  await asked;
  await page.waitForFunction(() => document.querySelector('#col-1-type').value === 'decimal');
  assert.equal(await page.getByLabel('Column name for id').inputValue(), 'measure_id');
  // The preview reads NA as null too.
  assert.equal(await page.locator('#preview tbody tr').nth(1).locator('td').nth(1).textContent(), 'null');
  await shot('18-null-values-reproposed');

  // The delimiter: read as ;-separated, the file has one column; detected again, two.
  const semicolon = page.waitForRequest((r) => r.url().includes('/v1/schema/infer') && new URL(r.url()).searchParams.get('delimiter') === ';');
  await page.locator('#delimiter').selectOption(';');
  await semicolon;
  await page.waitForFunction(() => document.querySelectorAll('table.editor tbody tr').length === 1);
  await page.locator('#delimiter').selectOption('');
  await page.waitForFunction(() => document.querySelectorAll('table.editor tbody tr').length === 2);
  assert.equal(await page.getByLabel('Type of amount').inputValue(), 'decimal');
});

test('a file loads into a new table in one step, and its page shows the schema it was created with', async (t) => {
  await ownerSignedIn();
  const rows = 100;
  const csv = ['Id,Region,Amount,Sold On']
    .concat(Array.from({ length: rows }, (_, i) => `${i + 1},${['north', 'south', 'east'][i % 3]},${i % 7 === 3 ? (i % 2 ? 'NA' : 'N/A') : `${i}.50`},2024-03-${String((i % 28) + 1).padStart(2, '0')}`))
    .join('\n') + '\n';
  const file = path.join(tmp, 'Sales Report.csv');
  writeFileSync(file, csv);
  await page.goto(`${base}/#/new`);
  await page.setInputFiles('#file', file);
  await page.locator('#target-create:checked').waitFor();
  assert.equal(await page.locator('#new-table-name').inputValue(), 'sales_report');
  assert.equal(await page.locator('table.editor').count(), 0, 'no schema to fill in');
  assert.ok(await page.locator('#dry_run').isDisabled(), 'no dry run of a table not made yet');
  await shot('19-one-step');
  const seenProblems = problems.length;
  const answered = page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/v1/imports');
  await page.getByRole('button', { name: 'Start import' }).click();
  const response = await answered;
  const query = new URL(response.url()).searchParams;
  assert.equal(query.get('create_table'), 'true');
  assert.equal(query.get('table'), 'sales_report');
  assert.equal(query.get('mapping'), null);
  assert.equal(query.get('dry_run'), null);
  if (response.status() !== 202) {
    // The server side of create_table is built in parallel: a server without it refuses the
    // option, and the page says so. The rest waits for that server.
    const alert = page.locator('#upload-status [role=alert]');
    await alert.waitFor();
    assert.match(await alert.textContent(), /The import could not start: .*create_table/);
    // The browser logs the refusal as a failed resource: expected here.
    const logged = problems.splice(seenProblems);
    problems.push(...logged.filter((p) => !/status of 422/.test(p)));
    t.skip(`this server does not take create_table yet (${response.status()}: ${await alert.textContent()})`);
    return;
  }
  await page.waitForURL(/#\/imports\/[0-9a-f-]{36}$/, { timeout: 60000 });
  const id = page.url().split('/').pop();
  await page.locator('#import-status .chip[data-status="complete"]').waitFor({ timeout: 60000 });
  const imp = (await apiCall('GET', `/v1/imports/${id}`)).body;
  const schema = imp.tables[0].created_schema;
  assert.ok(schema, 'the import says which table it created');
  const created = page.locator('#created-tables section');
  await created.waitFor();
  assert.match(await created.locator('h2').textContent(), new RegExp(`^Created table sales_report: ${schema.columns.length} columns$`));
  assert.deepEqual(await created.locator('tbody tr td[data-label="Type"]').allTextContents(), schema.columns.map((c) => c.type));
  // NA and N/A are missing-value spellings the server knows in a typed column.
  const missing = await created.locator('.missing-tokens code').allTextContents();
  assert.deepEqual([...missing].sort(), [...imp.tables[0].missing_tokens].sort());
  assert.ok(missing.includes('NA') && missing.includes('N/A'), `read as missing: ${missing}`);
  await page.locator('#timeline li', { hasText: 'Table created' }).waitFor();
  const table = await apiCall('GET', '/v1/tables/sales_report');
  assert.equal(table.body.row_count, rows);
  assert.notEqual(table.body.columns.find((c) => c.name === 'amount').type, 'string', 'NA and N/A were read as missing');
  await shot('20-one-step-created');
});

test('a gzip-compressed file previews inflated and loads into a table named after what it holds', async () => {
  await ownerSignedIn();
  const csv = ['Id,City'].concat(Array.from({ length: 30 }, (_, i) => `${i + 1},${['Oslo', 'Lima', 'Pune'][i % 3]}`)).join('\n') + '\n';
  const file = path.join(tmp, 'Cities.csv.gz');
  writeFileSync(file, gzipSync(csv));
  await page.goto(`${base}/#/new`);
  await page.setInputFiles('#file', file);
  await page.locator('#target-create:checked').waitFor();
  assert.equal(await page.locator('#new-table-name').inputValue(), 'cities');
  const answered = page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/v1/imports');
  await page.getByRole('button', { name: 'Start import' }).click();
  assert.equal((await answered).status(), 202);
  await page.waitForURL(/#\/imports\/[0-9a-f-]{36}$/, { timeout: 60000 });
  await page.locator('#import-status .chip[data-status="complete"]').waitFor({ timeout: 60000 });
  const table = await apiCall('GET', '/v1/tables/cities');
  assert.equal(table.body.row_count, 30);
});

test('a workbook is previewed by the server, its sheet is chosen, and it loads into a new table', async () => {
  await ownerSignedIn();
  await page.goto(`${base}/#/new`);
  await page.setInputFiles('#file', path.join(here, 'stock.xlsx'));
  await page.locator('#file-info', { hasText: 'sheet "About"' }).waitFor();
  await page.locator('#sheet').fill('Stock');
  await page.locator('#sheet').dispatchEvent('change');
  await page.locator('#file-info', { hasText: 'sheet "Stock"' }).waitFor();
  await page.locator('#target-create:checked').waitFor();
  assert.equal(await page.locator('#new-table-name').inputValue(), 'stock');
  const answered = page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/v1/imports');
  await page.getByRole('button', { name: 'Start import' }).click();
  const response = await answered;
  assert.equal(response.status(), 202);
  assert.equal(new URL(response.url()).searchParams.get('sheet'), 'Stock');
  await page.waitForURL(/#\/imports\/[0-9a-f-]{36}$/, { timeout: 60000 });
  await page.locator('#import-status .chip[data-status="complete"]').waitFor({ timeout: 60000 });
  const table = await apiCall('GET', '/v1/tables/stock');
  assert.equal(table.body.row_count, 12);
  assert.deepEqual(table.body.columns.map((c) => c.type), ['integer', 'string', 'integer', 'decimal', 'date']);
  await shot('21-workbook-loaded');
});

test('the error summary groups the rejected rows, warns when the download holds only some, and is absent without the route', async () => {
  await ownerSignedIn();
  const made = await apiCall('POST', '/v1/tables', {
    name: 'summary_check',
    columns: [{ name: 'id', type: 'integer', required: true }, { name: 'amount', type: 'decimal' }, { name: 'email', type: 'email' }],
    primary_key: ['id'],
  });
  assert.equal(made.status, 201, JSON.stringify(made.body));
  const csv = ['id,amount,email']
    .concat(Array.from({ length: 50 }, (_, i) => `${i + 1},${i % 10 === 2 ? 'abc' : '1.00'},${i % 10 === 5 ? 'not-an-email' : `u${i}@example.com`}`))
    .join('\n') + '\n';
  const imp = await importThroughApi('summary_check', csv);
  assert.equal(imp.counts.invalid, 10);
  const detail = `${base}/#/imports/${imp.id}`;
  const summaryUrl = `**/v1/imports/${imp.id}/errors/summary`;

  // As the server answers: a summary when it has the route, nothing when it answers 404.
  const answer = await fetch(`${base}/v1/imports/${imp.id}/errors/summary`, { headers: { Authorization: `Bearer ${KEY}` } });
  const real = { status: answer.status, body: answer.status === 200 ? await answer.json() : null };
  await page.goto(detail);
  await page.locator('#errors table.errors').waitFor();
  if (real.status === 200) {
    await page.locator('#errors-summary').waitFor();
    assert.equal(await page.locator('#errors-summary tbody tr').count(), real.body.groups.length);
  } else {
    assert.equal(real.status, 404);
    assert.equal(await page.locator('#errors-summary').count(), 0);
    assert.equal(await page.locator('#errors-truncated').count(), 0);
  }

  // The contract, with a truncated store: groups and a warning next to the download.
  await page.route(summaryUrl, (route) => route.fulfill({
    status: 200,
    contentType: 'application/json',
    body: JSON.stringify({
      invalid: 19748, stored: 10000, truncated: true,
      groups: [
        { table: 'summary_check', column: 'email', code: 'invalid_email', count: 46, first_line: 7, example: 'not-an-email' },
        { table: 'summary_check', column: 'amount', code: 'invalid_decimal', count: 19702, first_line: 3, example: 'abc' },
      ],
    }),
  }));
  await page.reload();
  const groups = page.locator('#errors-summary tbody tr');
  await groups.first().waitFor();
  assert.deepEqual((await groups.first().locator('td').allTextContents()).slice(0, 4),
    ['amount', 'invalid_decimal', '19,702 rows', 'line 3'], 'largest group first');
  assert.equal(await groups.count(), 2);
  const warning = page.locator('#errors .head-actions #errors-truncated');
  assert.equal(await warning.textContent(), 'The download holds 10,000 of the 19,748 rejected rows: only that many were kept.');
  await page.locator('#errors-summary').scrollIntoViewIfNeeded();
  await shot('21-error-summary');

  // A server without the route: no summary, no warning, the rows as before.
  await page.unroute(summaryUrl);
  await page.route(summaryUrl, (route) => route.fulfill({ status: 404, contentType: 'application/json', body: '{"error":{"code":"not_found","message":"no such route"}}' }));
  await page.reload();
  await page.locator('#errors table.errors').waitFor();
  assert.equal(await page.locator('#errors table.errors tbody tr').count(), 10);
  assert.equal(await page.locator('#errors-summary').count(), 0);
  assert.equal(await page.locator('#errors-truncated').count(), 0);
  // Without the summary, the import's own errors_stored / errors_truncated still warn.
  await patchImport(imp.id, (v) => ({ ...v, errors_stored: 4, errors_truncated: true }));
  await page.reload();
  await page.locator('#errors-truncated').waitFor();
  assert.equal(await page.locator('#errors-truncated').textContent(), 'The download holds 4 of the 10 rejected rows: only that many were kept.');
  await page.unrouteAll({ behavior: 'wait' });
});

test('an import that created its table shows the columns and the cells read as missing (contract, answered here)', async () => {
  await ownerSignedIn();
  const imp = (await apiCall('GET', '/v1/imports?table=summary_check&limit=1')).body.data[0];
  const createdSchema = {
    name: 'summary_check',
    columns: [
      { name: 'id', type: 'integer', required: true },
      { name: 'amount', type: 'decimal', required: false },
      { name: 'email', type: 'email', required: false },
    ],
    primary_key: ['id'],
  };
  const patch = (v) => ({
    ...v,
    tables: (v.tables || []).map((t) => ({ ...t, created_schema: createdSchema, missing_tokens: ['NA', 'N/A'] })),
  });
  await patchImport(imp.id, patch);
  await page.goto(`${base}/#/imports/${imp.id}`);
  const created = page.locator('#created-tables section');
  await created.waitFor();
  assert.equal(await created.locator('h2').textContent(), 'Created table summary_check: 3 columns');
  assert.deepEqual(await created.locator('tbody tr td[data-label="Type"]').allTextContents(), ['integer', 'decimal', 'email']);
  assert.equal(await created.locator('.missing-tokens').textContent(), 'Read as missing: NA, N/A');
  // The stream's end (the whole import) keeps it shown.
  await page.locator('#timeline li').first().waitFor();
  await page.waitForTimeout(300);
  assert.equal(await page.locator('#created-tables section').count(), 1);
  await shot('22-created-table');
  await page.unrouteAll({ behavior: 'wait' });
});

test('a page left before it loads paints nothing and opens no event stream', async () => {
  await ownerSignedIn();
  const imp = (await apiCall('GET', '/v1/imports?table=summary_check&limit=1')).body.data[0];
  // The import answers slowly: the user moves on before it arrives.
  await page.route(`**/v1/imports/${imp.id}`, async (route) => {
    await new Promise((r) => setTimeout(r, 800));
    await route.continue().catch(() => {});
  });
  const later = [];
  const onRequest = (r) => {
    if (r.url().includes(`/v1/imports/${imp.id}/`)) later.push(r.url());
  };
  page.on('request', onRequest);
  await page.evaluate((id) => { location.hash = `#/imports/${id}`; }, imp.id);
  await page.getByText('Loading the import…').waitFor();
  await page.evaluate(() => { location.hash = '#/tables'; });
  await page.getByRole('heading', { name: 'Tables' }).waitFor();
  await page.waitForTimeout(1500);
  page.off('request', onRequest);
  await page.unrouteAll({ behavior: 'wait' });
  assert.equal(await page.locator('h1').textContent(), 'Tables');
  assert.equal(await page.locator('#import-status').count(), 0, 'the import page did not paint over the tables');
  assert.deepEqual(later, [], 'no stream, events or errors were asked for the page left');
});

test('the browser reported no script error', () => {
  assert.deepEqual(problems, []);
});
