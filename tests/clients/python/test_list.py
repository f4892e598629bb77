"""python3-kubernetes against kube-local: label and field selectors, paging
with limit/_continue, and error Status bodies field by field."""
import unittest

from kubernetes import client

from kl import KubeLocal, error_of, unique

server = None


def setUpModule():
    global server
    server = KubeLocal()


def tearDownModule():
    server.stop()


def names(lst):
    return [i.metadata.name for i in lst.items]


class Lists(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.core = client.CoreV1Api(server.api)
        cls.batch = client.BatchV1Api(server.api)
        cls.ns = unique("list")
        cls.core.create_namespace({"metadata": {"name": cls.ns}})
        for i in range(7):
            cls.core.create_namespaced_config_map(cls.ns, {"metadata": {"name": f"cm-{i}", "labels": {
                "parity": "odd" if i % 2 else "even", "idx": str(i)}}})

    def test_label_selectors(self):
        self.assertEqual(names(self.core.list_namespaced_config_map(self.ns, label_selector="parity=odd")), ["cm-1", "cm-3", "cm-5"])
        self.assertEqual(names(self.core.list_namespaced_config_map(self.ns, label_selector="idx notin (0,1,2,3),parity=even")), ["cm-4", "cm-6"])
        status, body = error_of(self.core.list_namespaced_config_map, self.ns, label_selector="a in (")
        self.assertEqual((status, body["reason"]), (400, "BadRequest"))

    def test_field_selectors(self):
        self.assertEqual(names(self.core.list_namespaced_config_map(self.ns, field_selector="metadata.name=cm-2")), ["cm-2"])
        self.assertEqual(names(self.core.list_config_map_for_all_namespaces(
            field_selector=f"metadata.namespace={self.ns},metadata.name!=cm-1", label_selector="parity=odd")), ["cm-3", "cm-5"])
        status, body = error_of(self.core.list_namespaced_config_map, self.ns, field_selector="data.k=v")
        self.assertEqual((status, body["message"]), (400, "field label not supported: data.k"))

    def test_paging(self):
        seen, cont, pages = [], None, 0
        while True:
            page = self.core.list_namespaced_config_map(self.ns, limit=3, _continue=cont, label_selector="idx")
            pages += 1
            seen += names(page)
            # storage/continue.go PrepareContinueToken: no remainingItemCount with a selector.
            self.assertIsNone(page.metadata.remaining_item_count)
            cont = page.metadata._continue
            if not cont:
                break
        self.assertEqual(pages, 3)
        self.assertEqual(seen, [f"cm-{i}" for i in range(7)])
        total = len(self.core.list_namespaced_config_map(self.ns).items)
        first = self.core.list_namespaced_config_map(self.ns, limit=2)
        self.assertEqual(first.metadata.remaining_item_count, total - 2)
        status, body = error_of(self.core.list_namespaced_config_map, self.ns, limit=2, _continue="garbage")
        self.assertEqual(status, 400)

    def test_error_bodies(self):
        # errors.NewNotFound (apimachinery/pkg/api/errors/errors.go); StatusDetails.group omitempty.
        self.assertEqual(error_of(self.core.read_namespaced_config_map, "x", self.ns),
                         (404, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                "message": 'configmaps "x" not found', "reason": "NotFound",
                                "details": {"name": "x", "kind": "configmaps"}, "code": 404}))
        self.assertEqual(error_of(self.batch.read_namespaced_job, "x", self.ns),
                         (404, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                "message": 'jobs.batch "x" not found', "reason": "NotFound",
                                "details": {"name": "x", "group": "batch", "kind": "jobs"}, "code": 404}))
        self.assertEqual(error_of(self.core.read_namespace, "no-such-ns"),
                         (404, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                "message": 'namespaces "no-such-ns" not found', "reason": "NotFound",
                                "details": {"name": "no-such-ns", "kind": "namespaces"}, "code": 404}))
        self.assertEqual(error_of(self.core.create_namespaced_config_map, self.ns, {"metadata": {"name": "cm-0"}}),
                         (409, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                "message": 'configmaps "cm-0" already exists', "reason": "AlreadyExists",
                                "details": {"name": "cm-0", "kind": "configmaps"}, "code": 409}))
        status, body = error_of(self.core.create_namespaced_config_map, self.ns, {"metadata": {"name": "Bad_Name"}})
        self.assertEqual(status, 422)
        self.assertEqual(body["reason"], "Invalid")
        self.assertEqual(body["details"]["name"], "Bad_Name")
        self.assertEqual(body["details"]["kind"], "ConfigMap")
        self.assertNotIn("group", body["details"])
        self.assertTrue(body["message"].startswith('ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": '), body["message"])


if __name__ == "__main__":
    unittest.main()
