// @kubernetes/client-node against kube-local: watches from a resourceVersion,
// bookmarks, selector semantics of watch events, and an informer that
// survives dropped watches and a 410 Gone after compaction.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { admin, eventually, k8s, merge, raw, startKubeLocal, uniqueName } from './lib.mjs';

let server, core, ns;

before(async () => {
  server = await startKubeLocal();
  core = server.kc.makeApiClient(k8s.CoreV1Api);
  ns = uniqueName('watch');
  await core.createNamespace({ body: { metadata: { name: ns } } });
});
after(async () => { await server?.stop(); });

// Collects a watch's events until stopped.
async function collect(path, query) {
  const events = [];
  let ended = null;
  const ctl = await new k8s.Watch(server.kc).watch(path, query,
    (type, obj) => events.push({ type, obj }), (err) => { ended = err ?? 'closed'; });
  return { events, ended: () => ended, stop: () => ctl.abort() };
}

test('a watch from a list resourceVersion sees exactly the later changes, and bookmarks', async () => {
  await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'before' } } });
  const list = await core.listNamespacedConfigMap({ namespace: ns });
  const w = await collect(`/api/v1/namespaces/${ns}/configmaps`, { resourceVersion: list.metadata.resourceVersion, allowWatchBookmarks: true });
  try {
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'after' } } });
    await core.patchNamespacedConfigMap({ name: 'after', namespace: ns, body: { data: { a: 'b' } } }, merge);
    await core.deleteNamespacedConfigMap({ name: 'after', namespace: ns });
    await eventually(() => w.events.filter((e) => e.type !== 'BOOKMARK').length >= 3, 'three events');
    assert.deepEqual(w.events.filter((e) => e.type !== 'BOOKMARK').map((e) => [e.type, e.obj.metadata.name]),
      [['ADDED', 'after'], ['MODIFIED', 'after'], ['DELETED', 'after']]);
    // Bookmarks carry only kind, apiVersion and metadata.resourceVersion (cacher's
    // bookmark event), at a version no older than the last event.
    const last = Number(w.events.filter((e) => e.type === 'DELETED')[0].obj.metadata.resourceVersion);
    const bm = await eventually(() => w.events.find((e) => e.type === 'BOOKMARK' && Number(e.obj.metadata.resourceVersion) >= last), 'a bookmark');
    assert.deepEqual(Object.keys(bm.obj).sort(), ['apiVersion', 'kind', 'metadata']);
    assert.equal(bm.obj.kind, 'ConfigMap');
  } finally { w.stop(); }
});

test('an object that stops matching the selector leaves as DELETED with its last matching state', async () => {
  const cm = await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'sel', labels: { app: 'x' } }, data: { v: '1' } } });
  const w = await collect(`/api/v1/namespaces/${ns}/configmaps`, { resourceVersion: cm.metadata.resourceVersion, labelSelector: 'app=x' });
  try {
    const moved = await core.patchNamespacedConfigMap({ name: 'sel', namespace: ns, body: { metadata: { labels: { app: 'y' } }, data: { v: '2' } } }, merge);
    await eventually(() => w.events.length >= 1, 'the DELETED event');
    // cacheWatcher.convertToWatchEvent (apiserver/pkg/storage/cacher/cache_watcher.go):
    // !curObjPasses && oldObjPasses -> Deleted with the previous object, at the event's version.
    assert.equal(w.events[0].type, 'DELETED');
    assert.equal(w.events[0].obj.metadata.labels.app, 'x');
    assert.equal(w.events[0].obj.data.v, '1');
    assert.equal(w.events[0].obj.metadata.resourceVersion, moved.metadata.resourceVersion);
    // Back into the selector: ADDED with the new state.
    await core.patchNamespacedConfigMap({ name: 'sel', namespace: ns, body: { metadata: { labels: { app: 'x' } } } }, merge);
    await eventually(() => w.events.length >= 2, 'the ADDED event');
    assert.equal(w.events[1].type, 'ADDED');
    assert.equal(w.events[1].obj.data.v, '2');
  } finally { w.stop(); }
});

test('a watch from a compacted resourceVersion gets an ERROR event with a 410 Expired Status', async () => {
  const a = await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'old' } } });
  await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'newer' } } });
  await admin(server.kc, '/kube-local/compact');
  const w = await collect(`/api/v1/namespaces/${ns}/configmaps`, { resourceVersion: a.metadata.resourceVersion });
  await eventually(() => w.ended(), 'the watch to end');
  assert.equal(w.events.length, 1);
  assert.equal(w.events[0].type, 'ERROR');
  assert.equal(w.events[0].obj.kind, 'Status');
  assert.equal(w.events[0].obj.code, 410);
  assert.equal(w.events[0].obj.reason, 'Expired');
  assert.match(w.events[0].obj.message, /^too old resource version: \d+ \(\d+\)$/);
});

test('makeInformer survives dropped watches and relists after a 410', async () => {
  const path = `/api/v1/namespaces/${ns}/configmaps`;
  const inf = k8s.makeInformer(server.kc, path, () => core.listNamespacedConfigMap({ namespace: ns, labelSelector: 'inf' }), 'inf');
  const log = [];
  let connects = 0;
  inf.on('add', (o) => log.push(['add', o.metadata.name]));
  inf.on('update', (o) => log.push(['update', o.metadata.name]));
  inf.on('delete', (o) => log.push(['delete', o.metadata.name]));
  inf.on('connect', () => { connects += 1; });
  // The client's documented recovery: restart after an error (e.g. a failed watch request).
  let stopped = false;
  const errors = [];
  inf.on('error', (err) => { errors.push(err); if (!stopped) setTimeout(() => { if (!stopped) inf.start(); }, 50); });
  await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'i1', labels: { inf: 'y' } } } });
  await inf.start();
  try {
    await eventually(() => inf.get('i1', ns), 'i1 in the cache');
    // A dropped watch: the informer resumes from its resourceVersion and misses nothing.
    await admin(server.kc, '/kube-local/drop-watches');
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'i2', labels: { inf: 'y' } } } });
    await eventually(() => inf.get('i2', ns), 'i2 after a dropped watch');
    // Cut off (watches fail), change things, lose the history, let it back in:
    // its resume answers 410 and it must re-list.
    await raw(server.kc, 'POST', '/kube-local/faults', { failWatches: true });
    await admin(server.kc, '/kube-local/drop-watches');
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'i3', labels: { inf: 'y' } } } });
    await core.deleteNamespacedConfigMap({ name: 'i1', namespace: ns });
    await core.patchNamespacedConfigMap({ name: 'i2', namespace: ns, body: { data: { changed: 'yes' } } }, merge);
    await admin(server.kc, '/kube-local/compact');
    const connectsBefore = connects;
    await raw(server.kc, 'POST', '/kube-local/faults', { failWatches: false });
    await eventually(() => inf.get('i3', ns) && !inf.get('i1', ns) && inf.get('i2', ns)?.data?.changed === 'yes', 'the informer to catch up after 410');
    // Its restarts list before they watch, so one during the fault may have
    // caught up already: wait for the reconnect rather than assume it came first.
    await eventually(() => connects > connectsBefore, 'a reconnect once watches work again');
    assert.ok(errors.length > 0, 'the failing watches reached the error handler');
    assert.deepEqual(log.filter(([, n]) => n === 'i1'), [['add', 'i1'], ['delete', 'i1']]);
    assert.deepEqual(log.filter(([k, n]) => n === 'i3' && k === 'add').length, 1);
    // And live again afterwards.
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'i4', labels: { inf: 'y' } } } });
    await eventually(() => inf.get('i4', ns), 'i4 once recovered');
  } finally {
    stopped = true;
    await inf.stop();
  }
});
