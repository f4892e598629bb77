// Shared by the @kubernetes/client-node suites: starts a private kube-local
// (KUBE_LOCAL_BIN), loads its kubeconfig through the client's own loader and
// offers condition waits with deadlines. The client is imported unchanged from
// CLIENT_NODE_DIR, where scripts/setup.sh installs the pinned version.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';

const clientDir = process.env.CLIENT_NODE_DIR;
if (!clientDir) throw new Error('CLIENT_NODE_DIR is not set (scripts/setup.sh installs @kubernetes/client-node there)');
const entry = join(clientDir, 'node_modules/@kubernetes/client-node/dist/index.js');
if (!existsSync(entry)) throw new Error(`${entry} is missing: scripts/setup.sh installs @kubernetes/client-node into ${clientDir}`);
export const k8s = await import(pathToFileURL(entry).href);

export async function startKubeLocal(extraArgs = []) {
  const bin = process.env.KUBE_LOCAL_BIN;
  if (!bin) throw new Error('KUBE_LOCAL_BIN is not set');
  const dir = mkdtempSync(join(tmpdir(), 'client-node-'));
  const kubeconfig = join(dir, 'kubeconfig');
  const proc = spawn(bin, ['--port', '0', '--write-kubeconfig', kubeconfig, '--bookmark-interval-ms', '300', ...extraArgs],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  const ready = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('kube-local did not report ready within 30 s')), 30000);
    proc.on('exit', (code) => reject(new Error(`kube-local exited with ${code} before it was ready`)));
    createInterface(proc.stdout).on('line', (line) => {
      const m = /serving on https:\/\/127\.0\.0\.1:(\d+) \(kubeconfig /.exec(line);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
  });
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfig);
  return {
    kc, port: ready, kubeconfig,
    async stop() {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.on('exit', r));
        proc.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// A raw HTTPS request with the TLS and credentials the client derives from
// the kubeconfig (for kube-local's admin endpoints and for bodies the typed
// API would reshape). `agent` may be shared to reuse one TLS session cache.
export async function raw(kc, method, path, body, { agent, headers = {} } = {}) {
  const opts = {};
  await kc.applyToHTTPSOptions(opts);
  const url = new URL(kc.getCurrentCluster().server + path);
  return new Promise((resolve, reject) => {
    const req = https.request(url, {
      method, agent: agent ?? opts.agent, headers: { ...opts.headers, 'content-type': 'application/json', ...headers },
    }, (res) => {
      let data = '';
      res.on('data', (c) => { data += c; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text: data, json: data ? JSON.parse(data) : undefined }));
    });
    req.on('error', reject);
    if (body !== undefined) req.write(typeof body === 'string' ? body : JSON.stringify(body));
    req.end();
  });
}

export async function admin(kc, path) {
  const r = await raw(kc, 'POST', path, {});
  if (r.status !== 200) throw new Error(`${path}: ${r.status} ${r.text}`);
}

// Polls `cond` until it returns a truthy value or the deadline passes; returns the value.
export async function eventually(cond, what, ms = 20000) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try { last = await cond(); if (last) return last; } catch (e) { last = e; }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}; last: ${last instanceof Error ? last.stack : JSON.stringify(last)}`);
}

// The error body a typed call rejected with, parsed.
export async function rejection(promise) {
  try {
    const v = await promise;
    throw new Error(`expected an error, got ${JSON.stringify(v)}`);
  } catch (e) {
    if (!(e instanceof k8s.ApiException)) throw e;
    return { code: e.code, body: typeof e.body === 'string' ? JSON.parse(e.body) : e.body };
  }
}

export const merge = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
export const jsonPatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.JsonPatch);

export const widgetCrd = {
  apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition',
  metadata: { name: 'widgets.example.com' },
  spec: {
    group: 'example.com', scope: 'Namespaced',
    names: { plural: 'widgets', singular: 'widget', kind: 'Widget', listKind: 'WidgetList' },
    versions: [{
      name: 'v1', served: true, storage: true, subresources: { status: {} },
      schema: { openAPIV3Schema: { type: 'object', properties: {
        spec: { type: 'object', properties: { size: { type: 'integer' }, color: { type: 'string' } } },
        status: { type: 'object', properties: { phase: { type: 'string' } } },
      } } },
    }],
  },
};

let counter = 0;
export function uniqueName(prefix) { counter += 1; return `${prefix}-${process.pid}-${counter}`; }
