// Commerce Layer's own JS SDK (@commercelayer/sdk) against the Commerce Layer dialect of a
// running server (INTAKE_URL, owner key INTAKE_KEY; started by run.sh), unchanged but for its
// `fetch` option, which swaps Commerce Layer's origin for Intake's. Every call the dialect page
// lists goes through the SDK: the SDK parses each answer, so a shape it cannot read fails here.
// The one route the SDK has no method for (the events' linkage) is read with the same fetch.

import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { CommerceLayer } from '@commercelayer/sdk/bundle';
import { CommerceLayerStatic } from '@commercelayer/sdk';

const base = process.env.INTAKE_URL;
const ownerKey = process.env.INTAKE_KEY;
if (!base || !ownerKey) throw new Error('INTAKE_URL and INTAKE_KEY must be set (run.sh sets them)');
const compat = `${base}/compat/commercelayer`;
const ORGANIZATION = 'intake';
const TABLE = 'skus';

/** The SDK's requests, sent to Intake: only the origin changes, the paths are kept. */
const toIntake = (url, init) => fetch(String(url).replace(`https://${ORGANIZATION}.commercelayer.io`, compat), init);

/** A client of the SDK with a key (an Intake key is the access token). */
const client = (accessToken) => CommerceLayer({ organization: ORGANIZATION, accessToken, fetch: toIntake });

let cl;
let memberKey;
let viewerKey;
/** Imports made here, by name. */
const made = {};

/** The native API, to set up what the dialect does not create (a table, keys, a pending import). */
async function native(method, route, body) {
  const res = await fetch(`${base}${route}`, {
    method,
    headers: { Authorization: `Bearer ${ownerKey}`, 'Content-Type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

async function newKey(role) {
  const { status, body } = await native('POST', '/v1/keys', { name: `${role} key`, role });
  assert.equal(status, 201, JSON.stringify(body));
  return body.key;
}

/** Reads an import through the SDK until it has ended (its events stream the same thing). */
async function ended(id) {
  const deadline = Date.now() + 60000;
  for (;;) {
    const i = await cl.imports.retrieve(id);
    if (i.status === 'completed' || i.status === 'interrupted') return i;
    if (Date.now() > deadline) throw new Error(`import ${id} did not end: ${JSON.stringify(i)}`);
    // The server's own stream says when an import changes; a short pause between reads is
    // what an SDK user does.
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The error an SDK call throws: an ApiError with the answer's status and error objects. */
async function apiError(promise) {
  try {
    await promise;
  } catch (e) {
    assert.ok(CommerceLayerStatic.isApiError(e), `not an ApiError: ${e}`);
    return e;
  }
  throw new Error('the call succeeded');
}

const ids = (list) => [...list].map((i) => i.id).sort();

before(async () => {
  const { status, body } = await native('POST', '/v1/tables', {
    name: TABLE,
    columns: [
      { name: 'code', type: 'string', required: true },
      { name: 'name', type: 'string', required: true },
      { name: 'stock', type: 'integer' },
    ],
    primary_key: ['code'],
  });
  assert.equal(status, 201, JSON.stringify(body));
  memberKey = await newKey('member');
  viewerKey = await newKey('viewer');
  cl = client(ownerKey);
});

test('create: JSON inputs with labels answer 201 with the import, as the SDK types it', async () => {
  const i = await cl.imports.create({
    resource_type: TABLE,
    format: 'json',
    inputs: [{ code: 'ABC', name: 'Foo', stock: 1 }, { code: 'DEF', name: 'Bar', stock: 2 }],
    reference: 'REF-1',
    reference_origin: 'crm',
    metadata: { foo: 'bar' },
  });
  assert.equal(i.type, 'imports');
  assert.equal(i.resource_type, TABLE);
  assert.equal(i.format, 'json');
  assert.ok(['pending', 'in_progress', 'completed'].includes(i.status), i.status);
  assert.deepEqual(i.metadata, { foo: 'bar' });
  made.first = (await ended(i.id));
  assert.equal(made.first.status, 'completed');
  assert.equal(made.first.inputs_size, 2);
  assert.equal(made.first.processed_count, 2);
  assert.equal(made.first.errors_count, 0);
});

test('create: skip_errors true skips invalid rows, and errors_log names them', async () => {
  const i = await cl.imports.create({
    resource_type: TABLE,
    inputs: [{ code: 'GHI', name: 'Baz', stock: 3 }, { code: 'BAD', name: 'Bad', stock: 'many' }],
    skip_errors: true,
    reference: 'REF-2',
  });
  made.partial = await ended(i.id);
  assert.equal(made.partial.status, 'completed');
  assert.equal(made.partial.errors_count, 1);
  assert.deepEqual(Object.keys(made.partial.errors_log), ['BAD']);
  assert.ok(Array.isArray(made.partial.errors_log.BAD.stock), JSON.stringify(made.partial.errors_log));
});

test('create: skip_errors false interrupts an import whose errors pass 10%', async () => {
  const i = await cl.imports.create({
    resource_type: TABLE,
    inputs: [{ code: 'JKL', name: 'Ok', stock: 1 }, { code: 'MNO', name: 'Bad', stock: 'x' }],
    skip_errors: false,
  });
  made.interrupted = await ended(i.id);
  assert.equal(made.interrupted.status, 'interrupted');
  assert.match(made.interrupted.interrupted_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
});

test('create: CSV inputs with format csv', async () => {
  const i = await cl.imports.create({ resource_type: TABLE, format: 'csv', inputs: 'code,name\nPQR,Csv\n' });
  made.csv = await ended(i.id);
  assert.equal(made.csv.format, 'csv');
  assert.equal(made.csv.status, 'completed');
});

test('create: an unknown attribute and an unknown table are refused with their pointers', async () => {
  let e = await apiError(cl.imports.create({ resource_type: TABLE, inputs: [{ code: 'X', name: 'X' }], color: 'red' }));
  assert.equal(e.status, 400);
  assert.equal(e.errors[0].code, 'PARAM_NOT_ALLOWED');
  assert.deepEqual(e.errors[0].source, { pointer: '/data/attributes/color' });
  e = await apiError(cl.imports.create({ resource_type: 'nope', inputs: [{ code: 'X' }] }));
  assert.equal(e.status, 422);
  assert.equal(e.errors[0].code, 'VALIDATION_ERROR');
  assert.deepEqual(e.errors[0].source, { pointer: '/data/attributes/resource_type' });
});

test('retrieve: one import, and its sparse fieldset', async () => {
  const i = await cl.imports.retrieve(made.first.id);
  assert.equal(i.id, made.first.id);
  assert.equal(i.reference, 'REF-1');
  assert.equal(i.reference_origin, 'crm');
  assert.equal(i.parent_resource_id, null);
  assert.equal(i.cleanup_records, false);
  const sparse = await cl.imports.retrieve(made.first.id, { fields: { imports: ['status', 'errors_count'] } });
  assert.equal(sparse.status, 'completed');
  assert.equal(sparse.errors_count, 0);
  assert.equal(sparse.reference, undefined);
});

test('retrieve: include=events is refused with INVALID_INCLUDE, as on the list', async () => {
  // One call at a time: a second promise made up front could reject before it is awaited.
  for (const call of [
    () => cl.imports.retrieve(made.first.id, { include: ['events'] }),
    () => cl.imports.list({ include: ['events'] }),
  ]) {
    const e = await apiError(call());
    assert.equal(e.status, 400);
    assert.equal(e.errors[0].code, 'INVALID_INCLUDE');
    assert.deepEqual(e.errors[0].source, { parameter: 'include' });
  }
});

test('retrieve: an unknown id is 404 RECORD_NOT_FOUND', async () => {
  const e = await apiError(cl.imports.retrieve('00000000-0000-7000-8000-000000000000'));
  assert.equal(e.status, 404);
  assert.equal(e.errors[0].code, 'RECORD_NOT_FOUND');
});

test('list: a page with its meta, newest first', async () => {
  const list = await cl.imports.list();
  assert.equal(list.meta.recordCount, 4);
  assert.equal(list.meta.pageCount, 1);
  assert.equal(list.meta.currentPage, 1);
  assert.deepEqual([...list].map((i) => i.id), [made.csv.id, made.interrupted.id, made.partial.id, made.first.id]);
  assert.equal(list.hasNextPage(), false);
});

test('list: pages of two, forward and back', async () => {
  const first = await cl.imports.list({ pageSize: 2, pageNumber: 1, sort: { created_at: 'asc' } });
  assert.equal(first.meta.pageCount, 2);
  assert.equal(first.hasNextPage(), true);
  assert.deepEqual([...first].map((i) => i.id), [made.first.id, made.partial.id]);
  const second = await cl.imports.list({ pageSize: 2, pageNumber: 2, sort: { created_at: 'asc' } });
  assert.equal(second.hasPrevPage(), true);
  assert.equal(second.hasNextPage(), false);
  assert.deepEqual([...second].map((i) => i.id), [made.interrupted.id, made.csv.id]);
});

test('list: sorts by the documented fields, as an object or a list', async () => {
  const byErrors = await cl.imports.list({ sort: { errors_count: 'desc', created_at: 'asc' } });
  assert.deepEqual([...byErrors].slice(0, 2).map((i) => i.id).sort(), [made.partial.id, made.interrupted.id].sort());
  const byStatus = await cl.imports.list({ sort: ['status', '-created_at'] });
  assert.deepEqual([...byStatus].map((i) => i.status), ['completed', 'completed', 'completed', 'interrupted']);
  const e = await apiError(cl.imports.list({ sort: { name: 'asc' } }));
  assert.equal(e.errors[0].code, 'INVALID_SORT_CRITERIA');
});

test('list: sparse fieldsets on the list', async () => {
  const list = await cl.imports.list({ fields: { imports: ['status', 'reference'] } });
  assert.equal(list.length, 4);
  for (const i of list) {
    assert.ok(i.status);
    assert.equal(i.errors_count, undefined);
  }
});

test('list: the README\'s filters, plain dates and OR-combined attributes included', async () => {
  const all = ids([made.first, made.partial, made.interrupted, made.csv]);
  const filtered = async (filters) => ids(await cl.imports.list({ filters, pageSize: 25 }));
  assert.deepEqual(await filtered({ created_at_gt: '2018-01-01', created_at_lt: '2999-01-31' }), all);
  assert.deepEqual(await filtered({ updated_at_or_created_at_gt: '2019-10-10' }), all);
  assert.deepEqual(await filtered({ created_at_lt: '2018-01-01' }), []);
  assert.deepEqual(await filtered({ created_at_gteq: made.partial.created_at }), ids([made.partial, made.interrupted, made.csv]));
});

test('list: a dozen Ransack matchers', async () => {
  const filtered = async (filters) => ids(await cl.imports.list({ filters, pageSize: 25 }));
  assert.deepEqual(await filtered({ status_eq: 'interrupted' }), [made.interrupted.id]);
  assert.deepEqual(await filtered({ status_in: ['interrupted', 'pending'] }), [made.interrupted.id]);
  assert.deepEqual(await filtered({ status_not_eq: 'interrupted' }), ids([made.first, made.partial, made.csv]));
  assert.deepEqual(await filtered({ reference_start: 'REF' }), ids([made.first, made.partial]));
  assert.deepEqual(await filtered({ reference_end: '-2' }), [made.partial.id]);
  assert.deepEqual(await filtered({ reference_cont: 'EF-1' }), [made.first.id]);
  assert.deepEqual(await filtered({ reference_i_cont: 'ref-1' }), [made.first.id]);
  assert.deepEqual(await filtered({ reference_matches: 'ref-%' }), ids([made.first, made.partial]));
  assert.deepEqual(await filtered({ reference_null: true }), ids([made.interrupted, made.csv]));
  assert.deepEqual(await filtered({ reference_eq_or_null: 'REF-1' }), ids([made.first, made.interrupted, made.csv]));
  assert.deepEqual(await filtered({ reference_or_reference_origin_eq: 'crm' }), [made.first.id]);
  assert.deepEqual(await filtered({ errors_count_gt: 0 }), ids([made.partial, made.interrupted]));
  assert.deepEqual(await filtered({ processed_count_gteq_lteq: '2,2' }), ids([made.first, made.partial, made.interrupted]));
  assert.deepEqual(await filtered({ id_in: [made.first.id, made.csv.id] }), ids([made.first, made.csv]));
  assert.deepEqual(await filtered({ interrupted_at_not_null: true }), [made.interrupted.id]);
  assert.deepEqual(await filtered({ resource_type_eq: TABLE, status_eq: 'completed', errors_count_eq: 0 }), ids([made.first, made.csv]));
});

test('list: an unknown filter and a bad value are 400s the SDK reports', async () => {
  let e = await apiError(cl.imports.list({ filters: { name_eq: 'x' } }));
  assert.equal(e.status, 400);
  assert.equal(e.errors[0].code, 'FILTER_NOT_ALLOWED');
  assert.deepEqual(e.errors[0].source, { parameter: 'filter[q][name_eq]' });
  e = await apiError(cl.imports.list({ filters: { errors_count_gt: 'many' } }));
  assert.equal(e.errors[0].code, 'INVALID_FILTER_VALUE');
  e = await apiError(cl.imports.list({ pageSize: 26 }));
  assert.equal(e.errors[0].code, 'INVALID_PAGE_VALUE');
});

test('events: the import\'s lifecycle events, oldest first, paged', async () => {
  const events = await cl.imports.events(made.first.id);
  const names = [...events].map((e) => e.name);
  assert.equal(names[0], 'import.queued');
  assert.equal(names[names.length - 1], 'import.completed');
  assert.equal(events.meta.recordCount, names.length);
  for (const e of events) assert.equal(e.type, 'events');
  const page = await cl.imports.events(made.first.id, { pageSize: 1, pageNumber: 2 });
  assert.equal(page.length, 1);
  assert.equal(page[0].name, names[1]);
});

test('events: their linkage (no SDK method: read with the same fetch)', async () => {
  const res = await toIntake(`https://${ORGANIZATION}.commercelayer.io/api/imports/${made.first.id}/relationships/events`, {
    headers: { Accept: 'application/vnd.api+json', Authorization: `Bearer ${ownerKey}` },
  });
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.ok(body.data.length >= 2);
  assert.ok(body.data.every((d) => d.type === 'events' && d.id));
});

test('update: labels change', async () => {
  const i = await cl.imports.update({ id: made.first.id, reference: 'NEW', metadata: { a: 1 } });
  assert.equal(i.reference, 'NEW');
  assert.equal(i.reference_origin, 'crm');
  assert.deepEqual(i.metadata, { a: 1 });
});

test('_interrupt: a pending import (waiting for its file) is interrupted', async () => {
  const { status, body } = await native('POST', '/v1/imports', { table: TABLE, start: false, file_name: 'big.csv' });
  assert.equal(status, 202, JSON.stringify(body));
  const pending = await cl.imports.retrieve(body.id);
  assert.equal(pending.status, 'pending');
  const i = await cl.imports._interrupt(body.id);
  assert.equal(i.status, 'interrupted');
  assert.ok(i.interrupted_at);
  made.stopped = i;
});

test('_interrupt: an ended import cannot be interrupted (422 on _interrupt)', async () => {
  const e = await apiError(cl.imports._interrupt(made.csv.id));
  assert.equal(e.status, 422);
  assert.deepEqual(e.errors[0].source, { pointer: '/data/attributes/_interrupt' });
});

test('delete: a pending import is locked (423)', async () => {
  const { body } = await native('POST', '/v1/imports', { table: TABLE, start: false, file_name: 'later.csv' });
  const e = await apiError(cl.imports.delete(body.id));
  assert.equal(e.status, 423);
  assert.equal(e.errors[0].code, 'LOCKED');
  assert.equal((await cl.imports.retrieve(body.id)).status, 'pending');
});

test('delete: an ended import is forgotten; its records stay', async () => {
  await cl.imports.delete(made.csv.id);
  const e = await apiError(cl.imports.retrieve(made.csv.id));
  assert.equal(e.status, 404);
  const { body } = await native('GET', `/v1/tables/${TABLE}/records?limit=100`);
  assert.ok(body.data.some((r) => r.code === 'PQR'), JSON.stringify(body));
});

test('auth: a bad token is 401 INVALID_TOKEN', async () => {
  const e = await apiError(client('intake_not_a_real_key_000000').imports.list());
  assert.equal(e.status, 401);
  assert.equal(e.errors[0].code, 'INVALID_TOKEN');
});

test('auth: a viewer reads but cannot create; a member cannot delete (401 UNAUTHORIZED)', async () => {
  const viewer = client(viewerKey);
  assert.ok((await viewer.imports.list()).length > 0);
  let e = await apiError(viewer.imports.create({ resource_type: TABLE, inputs: [{ code: 'V', name: 'V' }] }));
  assert.equal(e.status, 401);
  assert.equal(e.errors[0].code, 'UNAUTHORIZED');
  const member = client(memberKey);
  e = await apiError(member.imports.delete(made.first.id));
  assert.equal(e.status, 401);
  assert.equal(e.errors[0].code, 'UNAUTHORIZED');
});
