"""Shared by the python3-kubernetes suites: starts a private kube-local
(KUBE_LOCAL_BIN), loads its kubeconfig through the client's own loader and
offers condition waits with deadlines. The client is Debian's package, used
unchanged."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time

from kubernetes import client, config

WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com", "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
        "versions": [{
            "name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "properties": {"size": {"type": "integer"}, "color": {"type": "string"}}},
                "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
            }}},
        }],
    },
}


class KubeLocal:
    def __init__(self, *extra):
        binary = os.environ.get("KUBE_LOCAL_BIN")
        if not binary:
            raise RuntimeError("KUBE_LOCAL_BIN is not set")
        self.dir = tempfile.mkdtemp(prefix="python-client-")
        self.kubeconfig = os.path.join(self.dir, "kubeconfig")
        self.proc = subprocess.Popen(
            [binary, "--port", "0", "--write-kubeconfig", self.kubeconfig, "--bookmark-interval-ms", "300", *extra],
            stdout=subprocess.PIPE, text=True)
        ready = {}

        def read():
            for line in self.proc.stdout:
                m = re.search(r"serving on https://127\.0\.0\.1:(\d+) \(kubeconfig ", line)
                if m:
                    ready["port"] = int(m.group(1))
                    break
            for _ in self.proc.stdout:  # keep draining
                pass

        threading.Thread(target=read, daemon=True).start()
        eventually(lambda: "port" in ready or self.proc.poll() is not None, "kube-local to be ready", 30)
        if "port" not in ready:
            raise RuntimeError(f"kube-local exited with {self.proc.returncode} before it was ready")
        self.port = ready["port"]
        # The client's own kubeconfig loader.
        self.api = config.new_client_from_config(config_file=self.kubeconfig)

    def admin(self, path, body=None):
        data, status, _ = self.api.call_api(path, "POST", body=body or {}, response_type=object,
                                            auth_settings=["BearerToken"], _preload_content=True,
                                            header_params={"Content-Type": "application/json"})
        if status != 200:
            raise RuntimeError(f"{path}: {status} {data}")

    def raw(self, method, path, body=None, query=None):
        """A request through the client's ApiClient, returning (status, parsed body) even for errors."""
        try:
            resp = self.api.call_api(path, method, query_params=query or [], body=body, auth_settings=["BearerToken"],
                                     header_params={"Content-Type": "application/json", "Accept": "application/json"},
                                     _preload_content=False)
            r = resp[0]
            return r.status, json.loads(r.data or b"null")
        except client.exceptions.ApiException as e:
            return e.status, json.loads(e.body)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


def eventually(cond, what, seconds=20):
    end = time.monotonic() + seconds
    last = None
    while time.monotonic() < end:
        try:
            last = cond()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - reported below if the deadline passes
            last = e
        time.sleep(0.025)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def error_of(fn, *args, **kwargs):
    """The ApiException a call raised: (status, parsed Status body)."""
    try:
        got = fn(*args, **kwargs)
    except client.exceptions.ApiException as e:
        return e.status, json.loads(e.body) if e.body else e.reason
    raise AssertionError(f"expected an error, got {got!r}")


_counter = [0]


def unique(prefix):
    _counter[0] += 1
    return f"{prefix}-{os.getpid()}-{_counter[0]}"
