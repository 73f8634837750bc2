// The dashboard in a real browser: Debian's Chromium driven by playwright-core against the
// real server binary (target/debug/intake) on a free port with a fresh data directory.
// The steps run in order and share one server, as a new user's session would:
// sign in, create a table from an inferred schema, upload a file with invalid rows, watch it
// reach 100 %, read and download the rejected rows, roll back, and check what each role sees.
// Screenshots of every page go to tests/browser/screenshots/ (not committed).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
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
    env: { ...process.env, INTAKE_BOOTSTRAP_KEY: KEY, RUST_LOG: process.env.RUST_LOG || 'info' },
    stdio: ['ignore', log, log],
  });
  await waitForServer(base);

  browser = await chromium.launch({ executablePath: chromiumPath, args: ARGS, headless: true });
  context = await browser.newContext({ viewport: { width: 1366, height: 860 }, acceptDownloads: true });
  page = await context.newPage();
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    // A refused key (401) and the role probe of a viewer key (403 on /v1/keys) are logged by
    // the browser as failed resources: both expected.
    if (m.type() === 'error' && !/status of 40[13]/.test(m.text())) problems.push(`console: ${m.text()}`);
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
  assert.match(await alert.textContent(), /This key was not accepted: invalid or revoked API key/);
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
  assert.ok(await page.locator('#target-new').isChecked());
  // The sample holds a few bad values, so some columns are proposed as strings: make them strict.
  await page.getByLabel('Type of email').selectOption('email');
  await page.getByLabel('Type of amount').selectOption('decimal');
  await page.getByLabel('Type of created_at').selectOption('datetime');
  // Every field but notes is required in this file; the sample happened to have them all.
  await page.getByLabel('amount is required').check();
  await page.getByLabel('created_at is required').check();
  // Unique in the sample, not in the whole file.
  await page.getByLabel('email is unique').uncheck();
  assert.ok(await page.getByLabel('id is part of the primary key').isChecked());
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
  const rows = errors.locator('tbody tr');
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

test('the browser reported no script error', () => {
  assert.deepEqual(problems, []);
});
