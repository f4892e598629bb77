"""python3-kubernetes (Debian's package, unchanged) against kube-local: CRUD of
core, batch and custom resources, merge and JSON patch, the status
subresource, 409 on a stale resourceVersion, dry-run and deleteCollection,
each compared with kube-apiserver's answer (sources cited per test)."""
import base64
import unittest

from kubernetes import client

from kl import WIDGET_CRD, KubeLocal, error_of, eventually, unique

server = None


def setUpModule():
    global server
    server = KubeLocal()


def tearDownModule():
    server.stop()


class Crud(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.core = client.CoreV1Api(server.api)
        cls.batch = client.BatchV1Api(server.api)
        cls.ext = client.ApiextensionsV1Api(server.api)
        cls.custom = client.CustomObjectsApi(server.api)
        cls.ns = unique("crud")
        cls.core.create_namespace({"metadata": {"name": cls.ns}})
        cls.ext.create_custom_resource_definition(WIDGET_CRD)
        eventually(lambda: any(c.type == "Established" and c.status == "True" for c in
                               (cls.ext.read_custom_resource_definition("widgets.example.com").status.conditions or [])),
                   "the Widget CRD to be Established")

    def test_configmap_crud_and_patches(self):
        ns = self.ns
        created = self.core.create_namespaced_config_map(ns, {"metadata": {"name": "cm"}, "data": {"k": "v"}})
        self.assertTrue(created.metadata.uid)
        read = self.core.read_namespaced_config_map("cm", ns)
        read.data["k"] = "v2"
        replaced = self.core.replace_namespaced_config_map("cm", ns, read)
        self.assertEqual(replaced.data, {"k": "v2"})
        # The Python client picks merge-patch+json for a dict body, json-patch+json for a list.
        merged = self.core.patch_namespaced_config_map("cm", ns, {"data": {"m": "x"}})
        self.assertEqual(merged.data, {"k": "v2", "m": "x"})
        patched = self.core.patch_namespaced_config_map("cm", ns, [
            {"op": "replace", "path": "/data/k", "value": "v3"}, {"op": "remove", "path": "/data/m"}])
        self.assertEqual(patched.data, {"k": "v3"})
        # store.go Delete -> finalizeDelete: a Success Status naming the object (no
        # ReturnDeletedObject for ConfigMaps); details.kind is the resource, core has no group.
        status, body = server.raw("DELETE", f"/api/v1/namespaces/{ns}/configmaps/cm")
        self.assertEqual(status, 200)
        self.assertEqual(body, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                "details": {"name": "cm", "kind": "configmaps", "uid": created.metadata.uid}})
        self.assertEqual(error_of(self.core.read_namespaced_config_map, "cm", ns)[0], 404)

    def test_secret_and_namespace(self):
        s = self.core.create_namespaced_secret(self.ns, {"metadata": {"name": "s"}, "stringData": {"p": "hunter2"}})
        self.assertEqual(s.type, "Opaque")
        self.assertEqual(base64.b64decode(s.data["p"]), b"hunter2")
        st = self.core.delete_namespaced_secret("s", self.ns)
        self.assertEqual((st.status, st.details.name, st.details.kind, st.details.group), ("Success", "s", "secrets", None))
        other = unique("other")
        self.core.create_namespace({"metadata": {"name": other}})
        # namespace/storage/storage.go sets ReturnDeletedObject: the Namespace comes back.
        status, body = server.raw("DELETE", f"/api/v1/namespaces/{other}")
        self.assertEqual(status, 200)
        self.assertEqual(body["kind"], "Namespace")
        self.assertEqual(body["status"]["phase"], "Terminating")

    def test_job_and_status_subresource(self):
        job = self.batch.create_namespaced_job(self.ns, {
            "metadata": {"name": "j", "annotations": {"kube-local.si.dev/pod-outcome": '{"result":"Succeeded","afterSeconds":3600}'}},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}})
        self.assertEqual(job.spec.backoff_limit, 6)
        st = self.batch.patch_namespaced_job_status("j", self.ns, {
            "status": {"uncountedTerminatedPods": {"succeeded": ["u1"]}}, "spec": {"parallelism": 5}})
        self.assertEqual(st.status.uncounted_terminated_pods.succeeded, ["u1"])
        self.assertEqual(st.spec.parallelism, 1)
        main = self.batch.patch_namespaced_job("j", self.ns, {
            "metadata": {"labels": {"x": "y"}}, "status": {"uncountedTerminatedPods": {"succeeded": ["u2"]}}})
        self.assertEqual(main.status.uncounted_terminated_pods.succeeded, ["u1"])
        d = self.batch.delete_namespaced_job("j", self.ns, propagation_policy="Background")
        self.assertEqual((d.status, d.details.group, d.details.kind), ("Success", "batch", "jobs"))
        status, body = error_of(self.batch.read_namespaced_job, "j", self.ns)
        self.assertEqual(status, 404)
        self.assertEqual(body["message"], 'jobs.batch "j" not found')

    def test_custom_resources(self):
        g = ("example.com", "v1", self.ns, "widgets")
        w = self.custom.create_namespaced_custom_object(*g, {"apiVersion": "example.com/v1", "kind": "Widget",
                                                             "metadata": {"name": "w1"}, "spec": {"size": 3}})
        self.assertEqual(w["metadata"]["generation"], 1)
        w["spec"]["size"] = 4
        replaced = self.custom.replace_namespaced_custom_object(*g, "w1", w)
        self.assertEqual(replaced["metadata"]["generation"], 2)
        merged = self.custom.patch_namespaced_custom_object(*g, "w1", {"spec": {"color": "red"}})
        self.assertEqual(merged["spec"], {"size": 4, "color": "red"})
        st = self.custom.patch_namespaced_custom_object_status(*g, "w1", {"status": {"phase": "Ready"}, "spec": {"size": 9}})
        self.assertEqual(st["status"], {"phase": "Ready"})
        self.assertEqual(st["spec"]["size"], 4)
        self.assertEqual(self.custom.get_namespaced_custom_object_status(*g, "w1")["status"]["phase"], "Ready")
        # store.go Update: no resourceVersion and AllowUnconditionalUpdate() false
        # (apiextensions-apiserver/pkg/registry/customresource/strategy.go) -> 422.
        body = dict(merged, metadata={k: v for k, v in merged["metadata"].items() if k != "resourceVersion"})
        status, err = error_of(self.custom.replace_namespaced_custom_object, *g, "w1", body)
        self.assertEqual(status, 422)
        self.assertEqual(err, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                               "message": 'widgets.example.com "w1" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update',
                               "reason": "Invalid", "code": 422,
                               "details": {"name": "w1", "group": "example.com", "kind": "widgets", "causes": [
                                   {"reason": "FieldValueInvalid", "message": "Invalid value: 0x0: must be specified for an update",
                                    "field": "metadata.resourceVersion"}]}})
        d = self.custom.delete_namespaced_custom_object(*g, "w1")
        self.assertEqual((d["kind"], d["status"], d["details"]["group"], d["details"]["kind"]), ("Status", "Success", "example.com", "widgets"))
        status, err = error_of(self.custom.get_namespaced_custom_object, *g, "w1")
        self.assertEqual((status, err["message"], err["details"]), (404, 'widgets.example.com "w1" not found',
                                                                    {"name": "w1", "group": "example.com", "kind": "widgets"}))

    def test_conflict_on_stale_resource_version(self):
        a = self.core.create_namespaced_config_map(self.ns, {"metadata": {"name": "stale"}, "data": {"n": "0"}})
        self.core.patch_namespaced_config_map("stale", self.ns, {"data": {"n": "1"}})
        a.data["n"] = "2"
        status, body = error_of(self.core.replace_namespaced_config_map, "stale", self.ns, a)
        self.assertEqual(status, 409)
        self.assertEqual(body, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                "message": 'Operation cannot be fulfilled on configmaps "stale": the object has been modified; please apply your changes to the latest version and try again',
                                "reason": "Conflict", "details": {"name": "stale", "kind": "configmaps"}, "code": 409})

    def test_dry_run(self):
        self.core.create_namespaced_config_map(self.ns, {"metadata": {"name": "dry"}}, dry_run="All")
        self.assertEqual(error_of(self.core.read_namespaced_config_map, "dry", self.ns)[0], 404)
        self.core.create_namespaced_config_map(self.ns, {"metadata": {"name": "keep"}, "data": {"a": "b"}})
        self.core.replace_namespaced_config_map("keep", self.ns, {"metadata": {"name": "keep"}, "data": {"a": "c"}}, dry_run="All")
        self.core.delete_namespaced_config_map("keep", self.ns, dry_run="All")
        self.assertEqual(self.core.read_namespaced_config_map("keep", self.ns).data, {"a": "b"})
        # ValidateUpdateOptions -> ValidateDryRun (apimachinery/pkg/apis/meta/v1/validation/validation.go).
        status, body = error_of(self.core.replace_namespaced_config_map, "keep", self.ns,
                                {"metadata": {"name": "keep"}, "data": {"a": "d"}}, dry_run="Sometimes")
        self.assertEqual(status, 422)
        self.assertEqual(body["message"], 'UpdateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: []string{"Sometimes"}: supported values: "All"')
        self.assertEqual(body["details"], {"group": "meta.k8s.io", "kind": "UpdateOptions", "causes": [
            {"reason": "FieldValueNotSupported", "message": 'Unsupported value: []string{"Sometimes"}: supported values: "All"', "field": "dryRun"}]})
        self.assertEqual(self.core.read_namespaced_config_map("keep", self.ns).data, {"a": "b"})
        # A DeleteOptions body's dryRun is validated the same way.
        status, body = error_of(self.core.delete_namespaced_config_map, "keep", self.ns, body=client.V1DeleteOptions(dry_run=["Sometimes"]))
        self.assertEqual((status, body["details"]["kind"]), (422, "DeleteOptions"))
        self.assertTrue(self.core.read_namespaced_config_map("keep", self.ns))

    def test_delete_collection(self):
        ns = unique("dc")
        self.core.create_namespace({"metadata": {"name": ns}})
        for name, tier in (("a", "db"), ("b", "db"), ("c", "web")):
            self.core.create_namespaced_config_map(ns, {"metadata": {"name": name, "labels": {"tier": tier}}})
        # store.go DeleteCollection: the ListOptions select (field selector too), the list is returned.
        status, body = server.raw("DELETE", f"/api/v1/namespaces/{ns}/configmaps", query=[("fieldSelector", "metadata.name=a")])
        self.assertEqual(status, 200)
        self.assertEqual((body["kind"], [i["metadata"]["name"] for i in body["items"]]), ("ConfigMapList", ["a"]))
        self.core.delete_collection_namespaced_config_map(ns, label_selector="tier=web")
        left = [i.metadata.name for i in self.core.list_namespaced_config_map(ns).items if i.metadata.name != "kube-root-ca.crt"]
        self.assertEqual(left, ["b"])


if __name__ == "__main__":
    unittest.main()
