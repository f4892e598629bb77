"""python3-kubernetes' dynamic client (kubernetes.dynamic.DynamicClient, which
walks discovery: /api, /apis and every group version) against kube-local:
resources found by apiVersion and kind, custom resources CRUD, the status
subresource, selectors, deleteCollection and watch."""
import threading
import unittest

from kubernetes import client, dynamic
from kubernetes.dynamic import exceptions as dynerr

from kl import WIDGET_CRD, KubeLocal, eventually, unique

server = None


def setUpModule():
    global server
    server = KubeLocal()


def tearDownModule():
    server.stop()


class Dynamic(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        ext = client.ApiextensionsV1Api(server.api)
        ext.create_custom_resource_definition(WIDGET_CRD)
        eventually(lambda: any(c.type == "Established" and c.status == "True" for c in
                               (ext.read_custom_resource_definition("widgets.example.com").status.conditions or [])),
                   "the Widget CRD to be Established")
        cls.dyn = dynamic.DynamicClient(server.api)
        cls.ns = unique("dyn")
        cls.dyn.resources.get(api_version="v1", kind="Namespace").create(body={"metadata": {"name": cls.ns}})

    def test_discovery_finds_core_batch_and_custom_kinds(self):
        cm = self.dyn.resources.get(api_version="v1", kind="ConfigMap")
        self.assertEqual((cm.name, cm.namespaced, cm.group), ("configmaps", True, ""))
        job = self.dyn.resources.get(api_version="batch/v1", kind="Job")
        self.assertEqual(job.name, "jobs")
        self.assertIn("status", job.subresources)
        w = self.dyn.resources.get(api_version="example.com/v1", kind="Widget")
        self.assertEqual((w.name, w.singular_name, w.namespaced), ("widgets", "widget", True))
        self.assertIn("status", w.subresources)
        self.assertEqual(self.dyn.resources.get(group="example.com", name="widgets").kind, "Widget")
        with self.assertRaises(dynerr.ResourceNotFoundError):
            self.dyn.resources.get(api_version="example.com/v1", kind="Gadget")

    def test_custom_resource_crud_status_and_errors(self):
        w = self.dyn.resources.get(api_version="example.com/v1", kind="Widget")
        created = w.create(namespace=self.ns, body={"apiVersion": "example.com/v1", "kind": "Widget",
                                                     "metadata": {"name": "w1", "labels": {"tier": "a"}}, "spec": {"size": 1}})
        self.assertEqual(created.metadata.generation, 1)
        got = w.get(name="w1", namespace=self.ns)
        self.assertEqual(got.spec.size, 1)
        body = got.to_dict()
        body["spec"]["size"] = 2
        self.assertEqual(w.replace(body=body, namespace=self.ns).spec.size, 2)
        merged = w.patch(name="w1", namespace=self.ns, body={"spec": {"color": "red"}}, content_type="application/merge-patch+json")
        self.assertEqual(merged.spec.color, "red")
        patched = w.patch(name="w1", namespace=self.ns, body=[{"op": "replace", "path": "/spec/size", "value": 5}],
                          content_type="application/json-patch+json")
        self.assertEqual(patched.spec.size, 5)
        st = w.status.patch(name="w1", namespace=self.ns, body={"status": {"phase": "Ready"}, "spec": {"size": 9}},
                            content_type="application/merge-patch+json")
        self.assertEqual((st.status.phase, st.spec.size), ("Ready", 5))
        # Strategic merge patch is refused for custom resources (415), as kube-apiserver does.
        with self.assertRaises(dynerr.DynamicApiError) as ctx:
            w.patch(name="w1", namespace=self.ns, body={"spec": {"size": 6}})
        self.assertEqual(ctx.exception.status, 415)
        d = w.delete(name="w1", namespace=self.ns)
        self.assertEqual((d.kind, d.status, d.details.group, d.details.kind), ("Status", "Success", "example.com", "widgets"))
        with self.assertRaises(dynerr.NotFoundError) as ctx:
            w.get(name="w1", namespace=self.ns)
        self.assertEqual(ctx.exception.status, 404)

    def test_selectors_and_delete_collection(self):
        cm = self.dyn.resources.get(api_version="v1", kind="ConfigMap")
        ns = unique("dc")
        self.dyn.resources.get(api_version="v1", kind="Namespace").create(body={"metadata": {"name": ns}})
        for name, tier in (("a", "db"), ("b", "db"), ("c", "web")):
            cm.create(namespace=ns, body={"metadata": {"name": name, "labels": {"tier": tier}}})
        self.assertEqual([i.metadata.name for i in cm.get(namespace=ns, label_selector="tier=db").items], ["a", "b"])
        self.assertEqual([i.metadata.name for i in cm.get(namespace=ns, field_selector="metadata.name=c").items], ["c"])
        # store.go DeleteCollection returns the list of what it deleted, selected by fields too.
        gone = cm.delete(namespace=ns, field_selector="metadata.name=a")
        self.assertEqual((gone.kind, [i.metadata.name for i in gone.items]), ("ConfigMapList", ["a"]))
        gone = cm.delete(namespace=ns, label_selector="tier=web")
        self.assertEqual([i.metadata.name for i in gone.items], ["c"])
        left = [i.metadata.name for i in cm.get(namespace=ns).items if i.metadata.name != "kube-root-ca.crt"]
        self.assertEqual(left, ["b"])

    def test_watch(self):
        w = self.dyn.resources.get(api_version="example.com/v1", kind="Widget")
        rv = w.get(namespace=self.ns).metadata.resourceVersion
        events = []

        def run():
            for ev in w.watch(namespace=self.ns, resource_version=rv, timeout=20):
                events.append((ev["type"], ev["object"].metadata.name))
                if len(events) == 2:
                    return

        t = threading.Thread(target=run, daemon=True)
        t.start()
        w.create(namespace=self.ns, body={"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w2"}, "spec": {}})
        w.delete(name="w2", namespace=self.ns)
        t.join(timeout=20)
        self.assertEqual(events, [("ADDED", "w2"), ("DELETED", "w2")])


if __name__ == "__main__":
    unittest.main()
