// TLS as Node's https stack (under @kubernetes/client-node) uses it: an agent
// built from the kubeconfig by the client caches TLS sessions and resumes them
// on its next connection. kube-apiserver allows that: Go's tls.Config, as
// apiserver/pkg/server/secure_serving.go (SecureServingInfo.tlsConfig) builds
// it, keeps session tickets on.
import assert from 'node:assert/strict';
import https from 'node:https';
import { after, before, test } from 'node:test';
import { k8s, startKubeLocal } from './lib.mjs';

let server;
before(async () => { server = await startKubeLocal(); });
after(async () => { await server?.stop(); });

function get(url, opts) {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { agent: opts.agent, headers: opts.headers }, (res) => {
      const reused = res.socket.isSessionReused();
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, reused, body }));
    });
    req.on('error', reject);
  });
}

test('the client agent resumes its TLS session on a second connection', async () => {
  const opts = {};
  await server.kc.applyToHTTPSOptions(opts);
  assert.ok(opts.agent instanceof https.Agent);
  const url = `${server.kc.getCurrentCluster().server}/api/v1/namespaces`;
  const first = await get(url, opts);
  assert.equal(first.status, 200);
  assert.equal(first.reused, false);
  // The agent does not keep connections alive: the second request is a new
  // TLS connection, offered the cached session.
  const second = await get(url, opts);
  assert.equal(second.status, 200, second.body);
  assert.equal(second.reused, true);
  // And the typed client keeps working alongside.
  const core = server.kc.makeApiClient(k8s.CoreV1Api);
  assert.ok((await core.listNamespace()).items.length > 0);
});
