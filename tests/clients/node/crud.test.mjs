// @kubernetes/client-node, unchanged, against kube-local: create/read/update/
// patch/delete of core, batch and custom resources, the status subresource,
// optimistic concurrency, dry-run and deleteCollection, each compared with
// what kube-apiserver answers (sources cited per test).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { eventually, jsonPatch, k8s, merge, raw, rejection, startKubeLocal, uniqueName, widgetCrd } from './lib.mjs';

let server, core, batch, ext, custom, objects, ns;

before(async () => {
  server = await startKubeLocal();
  core = server.kc.makeApiClient(k8s.CoreV1Api);
  batch = server.kc.makeApiClient(k8s.BatchV1Api);
  ext = server.kc.makeApiClient(k8s.ApiextensionsV1Api);
  custom = server.kc.makeApiClient(k8s.CustomObjectsApi);
  objects = k8s.KubernetesObjectApi.makeApiClient(server.kc);
  ns = uniqueName('crud');
  await core.createNamespace({ body: { metadata: { name: ns } } });
  await ext.createCustomResourceDefinition({ body: widgetCrd });
  await eventually(async () => (await ext.readCustomResourceDefinition({ name: 'widgets.example.com' }))
    .status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True'), 'the Widget CRD to be Established');
});
after(async () => { await server?.stop(); });

test('ConfigMap: create, read, replace, merge patch, JSON patch, delete', async () => {
  const created = await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'cm', labels: { a: '1' } }, data: { k: 'v' } } });
  assert.equal(created.metadata.name, 'cm');
  assert.ok(created.metadata.uid);
  assert.ok(created.metadata.resourceVersion);
  const read = await core.readNamespacedConfigMap({ name: 'cm', namespace: ns });
  assert.deepEqual(read.data, { k: 'v' });
  read.data.k = 'v2';
  const replaced = await core.replaceNamespacedConfigMap({ name: 'cm', namespace: ns, body: read });
  assert.equal(replaced.data.k, 'v2');
  assert.notEqual(replaced.metadata.resourceVersion, read.metadata.resourceVersion);
  const merged = await core.patchNamespacedConfigMap({ name: 'cm', namespace: ns, body: { data: { m: 'x' }, metadata: { labels: { a: null } } } }, merge);
  assert.deepEqual(merged.data, { k: 'v2', m: 'x' });
  assert.equal(merged.metadata.labels?.a, undefined);
  const patched = await core.patchNamespacedConfigMap({ name: 'cm', namespace: ns, body: [
    { op: 'test', path: '/data/k', value: 'v2' }, { op: 'replace', path: '/data/k', value: 'v3' }, { op: 'remove', path: '/data/m' }] }, jsonPatch);
  assert.deepEqual(patched.data, { k: 'v3' });
  const failedTest = await rejection(core.patchNamespacedConfigMap({ name: 'cm', namespace: ns, body: [{ op: 'test', path: '/data/k', value: 'nope' }] }, jsonPatch));
  assert.equal(failedTest.code, 422);
  // A delete that removes the object at once answers a Success Status naming it
  // (registry/generic/registry/store.go: Delete -> finalizeDelete; ConfigMaps do
  // not set ReturnDeletedObject); details.kind is the resource; core has no group.
  const gone = await raw(server.kc, 'DELETE', `/api/v1/namespaces/${ns}/configmaps/cm`);
  assert.equal(gone.status, 200);
  assert.deepEqual(gone.json, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success',
    details: { name: 'cm', kind: 'configmaps', uid: created.metadata.uid } });
  const nf = await rejection(core.readNamespacedConfigMap({ name: 'cm', namespace: ns }));
  assert.equal(nf.code, 404);
});

test('delete of an object kept for its finalizers returns the object, with deletionTimestamp', async () => {
  await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'held', finalizers: ['example.com/keep'] } } });
  const held = await core.deleteNamespacedConfigMap({ name: 'held', namespace: ns });
  // store.go Delete: !deleteImmediately -> `return out` (the updated object).
  assert.equal(held.kind, 'ConfigMap');
  const now = await core.readNamespacedConfigMap({ name: 'held', namespace: ns });
  assert.ok(now.metadata.deletionTimestamp);
  await core.patchNamespacedConfigMap({ name: 'held', namespace: ns, body: { metadata: { finalizers: null } } }, merge);
  await eventually(async () => (await rejection(core.readNamespacedConfigMap({ name: 'held', namespace: ns }))).code === 404, 'held to go');
});

test('Secret: stringData becomes data; typed delete returns Status; Namespace delete returns the Namespace', async () => {
  const s = await core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 's' }, stringData: { p: 'hunter2' } } });
  assert.equal(s.type, 'Opaque');
  assert.equal(Buffer.from(s.data.p, 'base64').toString(), 'hunter2');
  assert.equal(s.stringData, undefined);
  const st = await core.deleteNamespacedSecret({ name: 's', namespace: ns });
  assert.equal(st.status, 'Success');
  assert.equal(st.details.name, 's');
  assert.equal(st.details.kind, 'secrets');
  const other = uniqueName('other');
  await core.createNamespace({ body: { metadata: { name: other } } });
  // namespace/storage/storage.go sets ReturnDeletedObject: the Namespace comes back, Terminating.
  const nsGone = await raw(server.kc, 'DELETE', `/api/v1/namespaces/${other}`);
  assert.equal(nsGone.status, 200);
  assert.equal(nsGone.json.kind, 'Namespace');
  assert.equal(nsGone.json.status.phase, 'Terminating');
});

test('Job (batch/v1): create with defaults, status subresource, delete with propagation', async () => {
  const job = await batch.createNamespacedJob({ namespace: ns, body: {
    metadata: { name: 'j', annotations: { 'kube-local.si.dev/pod-outcome': '{"result":"Succeeded","afterSeconds":3600}' } },
    spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'c', image: 'busybox' }] } } } } });
  assert.equal(job.spec.backoffLimit, 6);
  assert.equal(job.spec.completions, 1);
  assert.ok(job.spec.selector.matchLabels['batch.kubernetes.io/controller-uid']);
  // Status writes through /status ignore spec; writes to the main resource ignore status
  // (pkg/registry/batch/job/strategy.go PrepareForUpdate / jobStatusStrategy). kube-local's
  // Job controller owns status.active, so the test writes a field it never does.
  const withStatus = await batch.patchNamespacedJobStatus({ name: 'j', namespace: ns,
    body: { status: { uncountedTerminatedPods: { succeeded: ['u1'] } }, spec: { parallelism: 5 } } }, merge);
  assert.deepEqual(withStatus.status.uncountedTerminatedPods.succeeded, ['u1']);
  assert.equal(withStatus.spec.parallelism, 1);
  const labelled = await batch.patchNamespacedJob({ name: 'j', namespace: ns,
    body: { metadata: { labels: { x: 'y' } }, status: { uncountedTerminatedPods: { succeeded: ['u2'] } } } }, merge);
  assert.equal(labelled.metadata.labels.x, 'y');
  assert.deepEqual(labelled.status.uncountedTerminatedPods.succeeded, ['u1']);
  const readStatus = await batch.readNamespacedJobStatus({ name: 'j', namespace: ns });
  assert.equal(readStatus.metadata.name, 'j');
  const st = await batch.deleteNamespacedJob({ name: 'j', namespace: ns, propagationPolicy: 'Background' });
  assert.equal(st.status, 'Success');
  assert.equal(st.details.group, 'batch');
  assert.equal(st.details.kind, 'jobs');
});

test('custom resources through CustomObjectsApi and KubernetesObjectApi (discovery)', async () => {
  const w = await custom.createNamespacedCustomObject({ group: 'example.com', version: 'v1', namespace: ns, plural: 'widgets',
    body: { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w1' }, spec: { size: 3, color: 'red' } } });
  assert.equal(w.spec.size, 3);
  assert.equal(w.metadata.generation, 1);
  const read = await objects.read({ apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w1', namespace: ns } });
  assert.equal(read.spec.color, 'red');
  read.spec.size = 4;
  const replaced = await objects.replace(read);
  assert.equal(replaced.spec.size, 4);
  assert.equal(replaced.metadata.generation, 2);
  const merged = await objects.patch({ apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w1', namespace: ns }, spec: { color: 'blue' } },
    undefined, undefined, undefined, undefined, k8s.PatchStrategy.MergePatch);
  assert.equal(merged.spec.color, 'blue');
  assert.equal(merged.spec.size, 4);
  // The status subresource: status changes only, generation unchanged.
  const st = await custom.patchNamespacedCustomObjectStatus({ group: 'example.com', version: 'v1', namespace: ns, plural: 'widgets', name: 'w1',
    body: { status: { phase: 'Ready' }, spec: { size: 99 } } }, merge);
  assert.equal(st.status.phase, 'Ready');
  assert.equal(st.spec.size, 4);
  assert.equal(st.metadata.generation, merged.metadata.generation);
  // A replace without metadata.resourceVersion is refused for custom resources:
  // registry/generic/registry/store.go Update, AllowUnconditionalUpdate() is false
  // in apiextensions-apiserver/pkg/registry/customresource/strategy.go.
  const noRv = { ...merged, metadata: { ...merged.metadata } };
  delete noRv.metadata.resourceVersion;
  const e = await rejection(custom.replaceNamespacedCustomObject({ group: 'example.com', version: 'v1', namespace: ns, plural: 'widgets', name: 'w1', body: noRv }));
  assert.equal(e.code, 422);
  assert.deepEqual(e.body, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure',
    message: 'widgets.example.com "w1" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update',
    reason: 'Invalid', code: 422,
    details: { name: 'w1', group: 'example.com', kind: 'widgets', causes: [
      { reason: 'FieldValueInvalid', message: 'Invalid value: 0x0: must be specified for an update', field: 'metadata.resourceVersion' }] } });
  const del = await objects.delete({ apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w1', namespace: ns } });
  assert.equal(del.status, 'Success');
  assert.deepEqual({ ...del.details, uid: undefined }, { name: 'w1', group: 'example.com', kind: 'widgets', uid: undefined });
});

test('409 Conflict on a stale resourceVersion', async () => {
  const a = await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'stale' }, data: { n: '0' } } });
  await core.patchNamespacedConfigMap({ name: 'stale', namespace: ns, body: { data: { n: '1' } } }, merge);
  a.data.n = '2';
  const e = await rejection(core.replaceNamespacedConfigMap({ name: 'stale', namespace: ns, body: a }));
  assert.equal(e.code, 409);
  // errors.NewConflict (apimachinery/pkg/api/errors/errors.go) with store.go's OptimisticLockErrorMsg.
  assert.deepEqual(e.body, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure',
    message: 'Operation cannot be fulfilled on configmaps "stale": the object has been modified; please apply your changes to the latest version and try again',
    reason: 'Conflict', details: { name: 'stale', kind: 'configmaps' }, code: 409 });
});

test('dryRun=All validates and persists nothing; an invalid dryRun value is a 422', async () => {
  const dry = await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'dry' } }, dryRun: 'All' });
  assert.equal(dry.metadata.name, 'dry');
  assert.equal((await rejection(core.readNamespacedConfigMap({ name: 'dry', namespace: ns }))).code, 404);
  await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'keep' }, data: { a: 'b' } } });
  await core.patchNamespacedConfigMap({ name: 'keep', namespace: ns, body: { data: { a: 'changed' } }, dryRun: 'All' }, merge);
  await core.deleteNamespacedConfigMap({ name: 'keep', namespace: ns, dryRun: 'All' });
  assert.equal((await core.readNamespacedConfigMap({ name: 'keep', namespace: ns })).data.a, 'b');
  // ValidateCreateOptions -> ValidateDryRun (apimachinery/pkg/apis/meta/v1/validation/validation.go),
  // rendered by errors.NewInvalid(meta.k8s.io CreateOptions) in endpoints/handlers/create.go.
  const e = await rejection(core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'sometimes' } }, dryRun: 'Sometimes' }));
  assert.equal(e.code, 422);
  assert.deepEqual(e.body, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure',
    message: 'CreateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: []string{"Sometimes"}: supported values: "All"',
    reason: 'Invalid', code: 422,
    details: { group: 'meta.k8s.io', kind: 'CreateOptions', causes: [
      { reason: 'FieldValueNotSupported', message: 'Unsupported value: []string{"Sometimes"}: supported values: "All"', field: 'dryRun' }] } });
  assert.equal((await rejection(core.readNamespacedConfigMap({ name: 'sometimes', namespace: ns }))).code, 404);
  const d = await rejection(core.deleteNamespacedConfigMap({ name: 'keep', namespace: ns, dryRun: 'Sometimes' }));
  assert.equal(d.code, 422);
  assert.equal(d.body.details.kind, 'DeleteOptions');
  assert.ok(await core.readNamespacedConfigMap({ name: 'keep', namespace: ns }));
});

test('deleteCollection honours label and field selectors and returns the deleted items', async () => {
  const dc = uniqueName('dc');
  await core.createNamespace({ body: { metadata: { name: dc } } });
  for (const [name, tier] of [['a', 'db'], ['b', 'db'], ['c', 'web']])
    await core.createNamespacedConfigMap({ namespace: dc, body: { metadata: { name, labels: { tier } } } });
  // Store.DeleteCollection lists with the ListOptions (field selector included) and
  // returns that list (registry/generic/registry/store.go).
  const byField = await raw(server.kc, 'DELETE', `/api/v1/namespaces/${dc}/configmaps?fieldSelector=metadata.name%3Da`);
  assert.equal(byField.status, 200);
  assert.equal(byField.json.kind, 'ConfigMapList');
  assert.deepEqual(byField.json.items.map((i) => i.metadata.name), ['a']);
  const left = (await core.listNamespacedConfigMap({ namespace: dc })).items.map((i) => i.metadata.name).filter((n) => n !== 'kube-root-ca.crt');
  assert.deepEqual(left, ['b', 'c']);
  const byLabel = await core.deleteCollectionNamespacedConfigMap({ namespace: dc, labelSelector: 'tier=web' });
  assert.equal(byLabel.kind, 'ConfigMapList');
  const after = (await core.listNamespacedConfigMap({ namespace: dc })).items.map((i) => i.metadata.name).filter((n) => n !== 'kube-root-ca.crt');
  assert.deepEqual(after, ['b']);
  const badField = await rejection(core.deleteCollectionNamespacedConfigMap({ namespace: dc, fieldSelector: 'data.k=v' }));
  assert.equal(badField.code, 400);
  assert.ok(await core.readNamespacedConfigMap({ name: 'b', namespace: dc }));
});
