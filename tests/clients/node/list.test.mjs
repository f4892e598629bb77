// @kubernetes/client-node against kube-local: label and field selectors,
// paging with limit/continue, and error Status bodies field by field.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { k8s, raw, rejection, startKubeLocal, uniqueName } from './lib.mjs';

let server, core, batch, ns;

before(async () => {
  server = await startKubeLocal();
  core = server.kc.makeApiClient(k8s.CoreV1Api);
  batch = server.kc.makeApiClient(k8s.BatchV1Api);
  ns = uniqueName('list');
  await core.createNamespace({ body: { metadata: { name: ns } } });
  for (let i = 0; i < 7; i++)
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: `cm-${i}`, labels: { parity: i % 2 ? 'odd' : 'even', idx: String(i) } } } });
  for (const [name, type] of [['tls', 'kubernetes.io/tls'], ['plain', 'Opaque']])
    await core.createNamespacedSecret({ namespace: ns, body: { metadata: { name }, type,
      data: type === 'Opaque' ? {} : { 'tls.crt': '', 'tls.key': '' } } });
});
after(async () => { await server?.stop(); });

const names = (l) => l.items.map((i) => i.metadata.name);

test('label selectors: equality, set-based, existence', async () => {
  assert.deepEqual(names(await core.listNamespacedConfigMap({ namespace: ns, labelSelector: 'parity=odd' })), ['cm-1', 'cm-3', 'cm-5']);
  assert.deepEqual(names(await core.listNamespacedConfigMap({ namespace: ns, labelSelector: 'idx in (0,6),parity!=odd' })), ['cm-0', 'cm-6']);
  assert.deepEqual(names(await core.listNamespacedConfigMap({ namespace: ns, labelSelector: 'parity,!missing' })),
    ['cm-0', 'cm-1', 'cm-2', 'cm-3', 'cm-4', 'cm-5', 'cm-6']);
  const bad = await rejection(core.listNamespacedConfigMap({ namespace: ns, labelSelector: 'a in (' }));
  assert.equal(bad.code, 400);
  assert.equal(bad.body.reason, 'BadRequest');
});

test('field selectors: metadata.name, secret type, an unsupported field', async () => {
  assert.deepEqual(names(await core.listNamespacedConfigMap({ namespace: ns, fieldSelector: 'metadata.name=cm-2' })), ['cm-2']);
  assert.deepEqual(names(await core.listNamespacedSecret({ namespace: ns, fieldSelector: 'type=kubernetes.io/tls' })), ['tls']);
  assert.deepEqual(names(await core.listConfigMapForAllNamespaces({ fieldSelector: `metadata.namespace=${ns},metadata.name!=cm-0`, labelSelector: 'parity=even' })),
    ['cm-2', 'cm-4', 'cm-6']);
  const bad = await rejection(core.listNamespacedConfigMap({ namespace: ns, fieldSelector: 'data.k=v' }));
  assert.equal(bad.code, 400);
  assert.equal(bad.body.message, 'field label not supported: data.k');
});

test('paging: limit and continue walk every item once, at one resourceVersion', async () => {
  const seen = [];
  let cont;
  let pages = 0;
  let first;
  do {
    const page = await core.listNamespacedConfigMap({ namespace: ns, limit: 3, _continue: cont, labelSelector: 'idx' });
    pages += 1;
    first ??= page.metadata.resourceVersion;
    seen.push(...names(page));
    cont = page.metadata._continue;
    // PrepareContinueToken (apiserver/pkg/storage/continue.go) leaves remainingItemCount
    // unset when a selector is given, since the count would be inexact.
    assert.equal(page.metadata.remainingItemCount, undefined);
  } while (cont);
  assert.equal(pages, 3);
  assert.deepEqual(seen, ['cm-0', 'cm-1', 'cm-2', 'cm-3', 'cm-4', 'cm-5', 'cm-6']);
  // Without a selector the count of what is left is given.
  const p1 = await core.listNamespacedConfigMap({ namespace: ns, limit: 2 });
  assert.equal(p1.items.length, 2);
  assert.ok(p1.metadata._continue);
  const total = (await core.listNamespacedConfigMap({ namespace: ns })).items.length;
  assert.equal(p1.metadata.remainingItemCount, total - 2);
});

test('error Status bodies, field by field, as kube-apiserver writes them', async () => {
  // errors.NewNotFound (apimachinery/pkg/api/errors/errors.go): details.kind is the
  // resource; StatusDetails.group is omitempty (meta/v1/types.go), so core has none.
  const cm = await rejection(core.readNamespacedConfigMap({ name: 'x', namespace: ns }));
  assert.equal(cm.code, 404);
  assert.deepEqual(cm.body, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure',
    message: 'configmaps "x" not found', reason: 'NotFound', details: { name: 'x', kind: 'configmaps' }, code: 404 });
  const job = await rejection(batch.readNamespacedJob({ name: 'x', namespace: ns }));
  assert.deepEqual(job.body, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure',
    message: 'jobs.batch "x" not found', reason: 'NotFound', details: { name: 'x', group: 'batch', kind: 'jobs' }, code: 404 });
  // errors.NewAlreadyExists.
  const dup = await rejection(core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'cm-0' } } }));
  assert.deepEqual(dup.body, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure',
    message: 'configmaps "cm-0" already exists', reason: 'AlreadyExists', details: { name: 'cm-0', kind: 'configmaps' }, code: 409 });
  // errors.NewInvalid with a field.Required cause (pkg/apis/batch/validation).
  const inv = await rejection(batch.createNamespacedJob({ namespace: ns, body: { metadata: { name: 'bad' },
    spec: { template: { spec: { restartPolicy: 'Never', containers: [] } } } } }));
  assert.equal(inv.code, 422);
  assert.equal(inv.body.reason, 'Invalid');
  assert.equal(inv.body.details.name, 'bad');
  assert.equal(inv.body.details.group, 'batch');
  assert.equal(inv.body.details.kind, 'Job');
  assert.ok(inv.body.message.startsWith('Job.batch "bad" is invalid: '), inv.body.message);
  assert.ok(inv.body.details.causes.some((c) => c.field === 'spec.template.spec.containers' && c.reason === 'FieldValueRequired'));
  // A namespaced create in a namespace that does not exist.
  const nons = await rejection(core.createNamespacedConfigMap({ namespace: 'no-such-ns', body: { metadata: { name: 'a' } } }));
  assert.deepEqual(nons.body, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure',
    message: 'namespaces "no-such-ns" not found', reason: 'NotFound', details: { name: 'no-such-ns', kind: 'namespaces' }, code: 404 });
  // A group/version nobody serves: apiserver/pkg/util/notfoundhandler/not_found_handler.go,
  // a 404 Status without details.
  const unknown = await raw(server.kc, 'GET', '/apis/example.com/v9/nothings');
  assert.equal(unknown.status, 404);
  assert.deepEqual(unknown.json, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure',
    message: 'the server could not find the requested resource', reason: 'NotFound', code: 404 });
});
