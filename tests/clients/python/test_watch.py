"""python3-kubernetes against kube-local: watch.Watch from a resourceVersion,
bookmarks, selector semantics of watch events, and an informer-style
list+watch loop that survives dropped watches and a 410 after compaction."""
import threading
import unittest

from kubernetes import client, watch

from kl import KubeLocal, error_of, eventually, unique

server = None


def setUpModule():
    global server
    server = KubeLocal()


def tearDownModule():
    server.stop()


class Collector:
    """Runs one Watch.stream in a thread and keeps its events."""

    def __init__(self, fn, **kwargs):
        self.events, self.error, self.w = [], None, watch.Watch()
        self.thread = threading.Thread(target=self._run, args=(fn, kwargs), daemon=True)
        self.thread.start()

    def _run(self, fn, kwargs):
        try:
            for ev in self.w.stream(fn, **kwargs):
                self.events.append(ev)
        except client.exceptions.ApiException as e:
            self.error = e

    def stop(self):
        self.w.stop()


class Watches(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.core = client.CoreV1Api(server.api)
        cls.ns = unique("watch")
        cls.core.create_namespace({"metadata": {"name": cls.ns}})

    def test_watch_from_resource_version_with_bookmarks(self):
        self.core.create_namespaced_config_map(self.ns, {"metadata": {"name": "before"}})
        rv = self.core.list_namespaced_config_map(self.ns).metadata.resource_version
        c = Collector(self.core.list_namespaced_config_map, namespace=self.ns, resource_version=rv, allow_watch_bookmarks=True)
        try:
            self.core.create_namespaced_config_map(self.ns, {"metadata": {"name": "after"}})
            self.core.patch_namespaced_config_map("after", self.ns, {"data": {"a": "b"}})
            self.core.delete_namespaced_config_map("after", self.ns)
            real = lambda: [(e["type"], e["object"].metadata.name) for e in c.events if e["type"] != "BOOKMARK"]
            eventually(lambda: len(real()) >= 3, "three events")
            self.assertEqual(real(), [("ADDED", "after"), ("MODIFIED", "after"), ("DELETED", "after")])
            last = int([e for e in c.events if e["type"] == "DELETED"][0]["object"].metadata.resource_version)
            bm = eventually(lambda: next((e for e in c.events if e["type"] == "BOOKMARK"
                                          and int(e["raw_object"]["metadata"]["resourceVersion"]) >= last), None), "a bookmark")
            self.assertEqual(sorted(bm["raw_object"]), ["apiVersion", "kind", "metadata"])
        finally:
            c.stop()

    def test_leaving_the_selector_is_deleted_with_the_old_object(self):
        cm = self.core.create_namespaced_config_map(self.ns, {"metadata": {"name": "sel", "labels": {"app": "x"}}, "data": {"v": "1"}})
        c = Collector(self.core.list_namespaced_config_map, namespace=self.ns, label_selector="app=x",
                      resource_version=cm.metadata.resource_version)
        try:
            moved = self.core.patch_namespaced_config_map("sel", self.ns, {"metadata": {"labels": {"app": "y"}}, "data": {"v": "2"}})
            eventually(lambda: c.events, "the DELETED event")
            # cacheWatcher.convertToWatchEvent (apiserver/pkg/storage/cacher/cache_watcher.go).
            ev = c.events[0]
            self.assertEqual(ev["type"], "DELETED")
            self.assertEqual(ev["object"].metadata.labels, {"app": "x"})
            self.assertEqual(ev["object"].data, {"v": "1"})
            self.assertEqual(ev["object"].metadata.resource_version, moved.metadata.resource_version)
        finally:
            c.stop()

    def test_watch_from_a_compacted_version_raises_410(self):
        a = self.core.create_namespaced_config_map(self.ns, {"metadata": {"name": "old"}})
        self.core.create_namespaced_config_map(self.ns, {"metadata": {"name": "newer"}})
        server.admin("/kube-local/compact")
        # Watch.stream retries once after a 410 ERROR event, then raises it.
        status, reason = error_of(lambda: list(watch.Watch().stream(self.core.list_namespaced_config_map, namespace=self.ns,
                                                                    resource_version=a.metadata.resource_version)))
        self.assertEqual(status, 410)
        self.assertRegex(reason, r"^Expired: too old resource version: \d+ \(\d+\)$")

    def test_informer_loop_survives_dropped_watches_and_410(self):
        ns, core = self.ns, self.core
        cache, log, stop, relists = {}, [], threading.Event(), [0]

        def loop():
            # The client's documented pattern: list, then Watch.stream from the list's
            # version; on 410 (or any failure) list again.
            rv = None
            while not stop.is_set():
                try:
                    if rv is None:
                        lst = core.list_namespaced_config_map(ns, label_selector="inf")
                        relists[0] += 1
                        names = {i.metadata.name for i in lst.items}
                        for gone in set(cache) - names:
                            cache.pop(gone)
                            log.append(("delete", gone))
                        for i in lst.items:
                            log.append(("add" if i.metadata.name not in cache else "update", i.metadata.name))
                            cache[i.metadata.name] = i
                        rv = lst.metadata.resource_version
                    w = watch.Watch()
                    for ev in w.stream(core.list_namespaced_config_map, ns, label_selector="inf",
                                       resource_version=rv, allow_watch_bookmarks=True):
                        if stop.is_set():
                            w.stop()
                            break
                        obj = ev["object"]
                        rv = obj.metadata.resource_version
                        if ev["type"] in ("ADDED", "MODIFIED"):
                            log.append(("add" if obj.metadata.name not in cache else "update", obj.metadata.name))
                            cache[obj.metadata.name] = obj
                        elif ev["type"] == "DELETED":
                            cache.pop(obj.metadata.name, None)
                            log.append(("delete", obj.metadata.name))
                except client.exceptions.ApiException as e:
                    if e.status == 410:
                        rv = None
                    else:
                        stop.wait(0.05)  # watches failing: retry shortly

        core.create_namespaced_config_map(ns, {"metadata": {"name": "i1", "labels": {"inf": "y"}}})
        t = threading.Thread(target=loop, daemon=True)
        t.start()
        try:
            eventually(lambda: "i1" in cache, "i1 cached")
            server.admin("/kube-local/drop-watches")
            core.create_namespaced_config_map(ns, {"metadata": {"name": "i2", "labels": {"inf": "y"}}})
            eventually(lambda: "i2" in cache, "i2 after a dropped watch")
            self.assertEqual(relists[0], 1)  # Watch.stream resumed by itself
            server.admin("/kube-local/faults", {"failWatches": True})
            server.admin("/kube-local/drop-watches")
            core.create_namespaced_config_map(ns, {"metadata": {"name": "i3", "labels": {"inf": "y"}}})
            core.delete_namespaced_config_map("i1", ns)
            core.patch_namespaced_config_map("i2", ns, {"data": {"changed": "yes"}})
            server.admin("/kube-local/compact")
            server.admin("/kube-local/faults", {"failWatches": False})
            eventually(lambda: "i3" in cache and "i1" not in cache and (cache["i2"].data or {}).get("changed") == "yes",
                       "the loop to catch up after 410")
            self.assertEqual(relists[0], 2)
            self.assertEqual([e for e in log if e[1] == "i1"], [("add", "i1"), ("delete", "i1")])
            core.create_namespaced_config_map(ns, {"metadata": {"name": "i4", "labels": {"inf": "y"}}})
            eventually(lambda: "i4" in cache, "i4 once recovered")
        finally:
            stop.set()
            t.join(timeout=10)


if __name__ == "__main__":
    unittest.main()
