"""What the chart renders, with the real helm: one behaviour per test.

Run by ctest (tests/CMakeLists.txt, label chart) one test a ctest entry:
  /usr/bin/python3 -m unittest -v chart_render_test.ChartRender.test_NAME
HELM names the helm binary (default: helm on PATH), CHART the chart directory.
"""
import base64
import json
import math
import os
import re
import subprocess
import tempfile
import unittest

import yaml

HELM = os.environ.get("HELM", "helm")
CHART = os.environ.get("CHART", os.path.join(os.path.dirname(__file__), "../../charts/backup-operator"))
NS = "bo-system"


def render(*sets, release="bo", files=()):
    """helm template with --set pairs; returns the documents, which must all parse."""
    cmd = [HELM, "template", release, CHART, "--namespace", NS]
    for s in sets:
        cmd += ["--set", s]
    for f in files:
        cmd += ["-f", f]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{r.stdout}{r.stderr}")
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def one(docs, kind):
    found = by_kind(docs, kind)
    if len(found) != 1:
        raise AssertionError(f"expected one {kind}, got {len(found)}")
    return found[0]


def pod_spec(docs):
    return one(docs, "Deployment")["spec"]["template"]["spec"]


def args(docs):
    return pod_spec(docs)["containers"][0]["args"]


def flag(docs, name):
    values = [a.split("=", 1)[1] for a in args(docs) if a.startswith(name + "=")]
    return values[0] if values else None


def mounted_secret(docs, mount_path):
    """The Secret mounted at mount_path in the operator container."""
    spec = pod_spec(docs)
    volume = [m["name"] for m in spec["containers"][0]["volumeMounts"] if m["mountPath"] == mount_path]
    if not volume:
        raise AssertionError(f"nothing is mounted at {mount_path}")
    return [v["secret"]["secretName"] for v in spec["volumes"] if v["name"] == volume[0]][0]


def referenced_names(docs):
    """Every name an object of the chart gives to another object of the chart."""
    names = []
    for d in docs:
        k = d["kind"]
        if k == "Deployment":
            s = d["spec"]["template"]["spec"]
            names.append(s["serviceAccountName"])
            names += [v["secret"]["secretName"] for v in s["volumes"] if "secret" in v]
        elif k in ("ClusterRoleBinding", "RoleBinding"):
            names.append(d["roleRef"]["name"])
            names += [s["name"] for s in d["subjects"]]
        elif k == "MutatingWebhookConfiguration":
            names += [w["clientConfig"]["service"]["name"] for w in d["webhooks"]]
        elif k == "Certificate":
            names += [d["spec"]["secretName"], d["spec"]["issuerRef"]["name"]]
    return names


def verify_leaf(ca_pem, leaf_pem, host):
    """openssl verify of leaf against ca for host; returns (ok, output)."""
    with tempfile.TemporaryDirectory() as t:
        ca, leaf = os.path.join(t, "ca.pem"), os.path.join(t, "leaf.pem")
        for path, pem in ((ca, ca_pem), (leaf, leaf_pem)):
            with open(path, "wb") as f:
                f.write(pem)
        r = subprocess.run(["openssl", "verify", "-CAfile", ca, "-verify_hostname", host, leaf],
                           capture_output=True, text=True, check=False)
        return r.returncode == 0, r.stdout + r.stderr


class ChartRender(unittest.TestCase):
    # --- surviving a drain ---
    def test_two_replicas_get_a_pdb_of_min_available_one_selecting_the_pods(self):
        docs = render()
        pdb = one(docs, "PodDisruptionBudget")
        self.assertEqual(pdb["apiVersion"], "policy/v1")
        self.assertEqual(pdb["spec"], {"minAvailable": 1, "selector": {
            "matchLabels": one(docs, "Deployment")["spec"]["selector"]["matchLabels"]}})
        self.assertEqual(one(docs, "Deployment")["spec"]["replicas"], 2)

    def test_one_replica_gets_no_pdb_which_would_block_every_drain(self):
        self.assertEqual(by_kind(render("replicaCount=1"), "PodDisruptionBudget"), [])

    def test_pdb_takes_max_unavailable_or_a_percentage_instead(self):
        self.assertEqual(one(render("podDisruptionBudget.maxUnavailable=1"), "PodDisruptionBudget")["spec"]["maxUnavailable"], 1)
        spec = one(render("podDisruptionBudget.minAvailable=50%"), "PodDisruptionBudget")["spec"]
        self.assertEqual(spec["minAvailable"], "50%")
        self.assertNotIn("maxUnavailable", spec)

    def test_pdb_can_be_turned_off(self):
        self.assertEqual(by_kind(render("podDisruptionBudget.enabled=false"), "PodDisruptionBudget"), [])

    def test_replicas_prefer_different_nodes_by_default(self):
        docs = render()
        terms = pod_spec(docs)["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        self.assertEqual(len(terms), 1)
        term = terms[0]["podAffinityTerm"]
        self.assertEqual(term["topologyKey"], "kubernetes.io/hostname")
        self.assertEqual(term["labelSelector"]["matchLabels"],
                         one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"])

    def test_hard_anti_affinity_is_required_and_none_or_an_explicit_affinity_replaces_it(self):
        hard = pod_spec(render("podAntiAffinity=hard"))["affinity"]["podAntiAffinity"]
        self.assertEqual(list(hard), ["requiredDuringSchedulingIgnoredDuringExecution"])
        self.assertNotIn("affinity", pod_spec(render("podAntiAffinity=none")))
        mine = pod_spec(render("affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
                               ".nodeSelectorTerms[0].matchExpressions[0].key=pool",
                               "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
                               ".nodeSelectorTerms[0].matchExpressions[0].operator=Exists"))["affinity"]
        self.assertEqual(list(mine), ["nodeAffinity"])

    def test_topology_spread_constraints_get_the_pod_selector_unless_they_name_one(self):
        docs = render("topologySpreadConstraints[0].maxSkew=1",
                      "topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone",
                      "topologySpreadConstraints[0].whenUnsatisfiable=ScheduleAnyway",
                      "topologySpreadConstraints[1].maxSkew=1",
                      "topologySpreadConstraints[1].topologyKey=kubernetes.io/hostname",
                      "topologySpreadConstraints[1].whenUnsatisfiable=DoNotSchedule",
                      "topologySpreadConstraints[1].labelSelector.matchLabels.app=x")
        c = pod_spec(docs)["topologySpreadConstraints"]
        self.assertEqual(c[0]["labelSelector"]["matchLabels"], one(docs, "Deployment")["spec"]["selector"]["matchLabels"])
        self.assertEqual(c[1]["labelSelector"]["matchLabels"], {"app": "x"})
        self.assertEqual(pod_spec(render()).get("topologySpreadConstraints"), None)

    # --- names ---
    def check_names(self, docs, prefix, name_label):
        for d in docs:
            n = d["metadata"]["name"]
            self.assertTrue(n.startswith(prefix), f"{d['kind']} {n} does not start with {prefix}")
            self.assertLessEqual(len(n), 63, f"{d['kind']} {n}")
            self.assertEqual(d["metadata"]["labels"]["app.kubernetes.io/name"], name_label, d["kind"])
        for n in referenced_names(docs):
            self.assertTrue(n.startswith(prefix), f"reference {n} does not start with {prefix}")
        kinds_names = [(d["kind"], d["metadata"]["name"]) for d in docs]
        self.assertEqual(len(kinds_names), len(set(kinds_names)), kinds_names)
        self.assertEqual(one(docs, "Deployment")["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"], name_label)

    every_option = ("metrics.serviceMonitor.enabled=true", "prometheusRule.enabled=true")

    def test_name_override_replaces_the_chart_name_in_every_object_name_and_label(self):
        docs = render("nameOverride=bk", *self.every_option)
        self.check_names(docs, "bo-bk", "bk")
        self.assertEqual(one(docs, "Deployment")["metadata"]["name"], "bo-bk")
        self.assertEqual(one(docs, "ServiceAccount")["metadata"]["name"], "bo-bk")
        # Release names containing the chart's name are not repeated (helm create's rule).
        self.assertEqual(one(render(release="backup-operator"), "Deployment")["metadata"]["name"], "backup-operator")

    def test_fullname_override_names_everything_and_long_names_keep_their_suffix_within_63(self):
        long = "a-very-long-full-name-that-goes-on-and-on-and-on-forever-more-and-more"
        docs = render("fullnameOverride=" + long, *self.every_option)
        self.check_names(docs, long[:40], "backup-operator")
        names = {d["metadata"]["name"] for d in docs}
        for suffix in ("-webhook", "-webhook-tls", "-metrics", "-metrics-reader", "-leader-election"):
            self.assertTrue(any(n.endswith(suffix) and len(n) == 63 for n in names), f"{suffix} in {names}")
        self.check_names(render("fullnameOverride=ops", *self.every_option, "webhook.certificate.mode=certManager"),
                         "ops", "backup-operator")

    # --- the ServiceMonitor's TLS ---
    def test_service_monitor_verifies_the_webhook_certificate_that_metrics_serves_by_default(self):
        docs = render("metrics.serviceMonitor.enabled=true")
        tls = one(docs, "ServiceMonitor")["spec"]["endpoints"][0]["tlsConfig"]
        self.assertFalse(tls["insecureSkipVerify"])
        self.assertEqual(flag(docs, "--metrics-cert-dir"), "/etc/backup-operator/webhook")
        served = mounted_secret(docs, "/etc/backup-operator/webhook")
        self.assertEqual(tls["ca"], {"secret": {"name": served, "key": "ca.crt"}})
        webhook_service = one(docs, "MutatingWebhookConfiguration")["webhooks"][0]["clientConfig"]["service"]["name"]
        self.assertEqual(tls["serverName"], f"{webhook_service}.{NS}.svc")
        # ... and that name is in the served certificate, which its ca.crt signed.
        secret = [d for d in by_kind(docs, "Secret") if d["metadata"]["name"] == served][0]
        ok, out = verify_leaf(base64.b64decode(secret["data"]["ca.crt"]), base64.b64decode(secret["data"]["tls.crt"]),
                              tls["serverName"])
        self.assertTrue(ok, out)

    def test_service_monitor_verifies_metrics_cert_secret_when_one_is_given(self):
        docs = render("metrics.serviceMonitor.enabled=true", "metrics.certSecret=metrics-tls")
        tls = one(docs, "ServiceMonitor")["spec"]["endpoints"][0]["tlsConfig"]
        self.assertEqual(flag(docs, "--metrics-cert-dir"), "/etc/backup-operator/metrics")
        self.assertEqual(mounted_secret(docs, "/etc/backup-operator/metrics"), "metrics-tls")
        self.assertEqual(tls["ca"]["secret"]["name"], "metrics-tls")
        self.assertEqual(tls["serverName"], f"bo-backup-operator-metrics.{NS}.svc")
        tls = one(render("metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.tlsConfig.caSecret=ca",
                         "metrics.serviceMonitor.tlsConfig.caKey=root.pem",
                         "metrics.serviceMonitor.tlsConfig.serverName=metrics.example"),
                  "ServiceMonitor")["spec"]["endpoints"][0]["tlsConfig"]
        self.assertEqual(tls["ca"], {"secret": {"name": "ca", "key": "root.pem"}})
        self.assertEqual(tls["serverName"], "metrics.example")

    def test_service_monitor_skips_verification_only_when_the_user_says_so(self):
        tls = one(render("metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.tlsConfig.insecureSkipVerify=true"),
                  "ServiceMonitor")["spec"]["endpoints"][0]["tlsConfig"]
        self.assertEqual(tls, {"insecureSkipVerify": True})
        for sets in ((), ("metrics.certSecret=m",), ("webhook.certificate.mode=certManager",)):
            tls = one(render("metrics.serviceMonitor.enabled=true", *sets), "ServiceMonitor")["spec"]["endpoints"][0]
            self.assertFalse(tls["tlsConfig"]["insecureSkipVerify"], sets)

    def test_plain_http_metrics_have_no_tls_and_no_cert_dir(self):
        docs = render("metrics.serviceMonitor.enabled=true", "metrics.secure=false")
        self.assertNotIn("tlsConfig", one(docs, "ServiceMonitor")["spec"]["endpoints"][0])
        self.assertIsNone(flag(docs, "--metrics-cert-dir"))
        self.assertNotIn("--metrics-secure", args(docs))

    # --- webhook certificate modes ---
    def test_generate_mode_makes_a_ca_and_a_leaf_for_the_webhook_service_and_the_ca_is_the_ca_bundle(self):
        docs = render()
        secrets = by_kind(docs, "Secret")
        self.assertEqual(len(secrets), 1)
        s = secrets[0]
        self.assertEqual(s["metadata"]["name"], mounted_secret(docs, "/etc/backup-operator/webhook"))
        hook = one(docs, "MutatingWebhookConfiguration")["webhooks"][0]["clientConfig"]
        self.assertEqual(hook["caBundle"], s["data"]["ca.crt"])
        ok, out = verify_leaf(base64.b64decode(s["data"]["ca.crt"]), base64.b64decode(s["data"]["tls.crt"]),
                              f"{hook['service']['name']}.{NS}.svc")
        self.assertTrue(ok, out)

    def test_generate_mode_makes_a_new_ca_on_every_render_without_a_cluster_as_documented(self):
        # helm template cannot look the Secret up: the limitation values.yaml and the README state.
        a = one(render(), "Secret")["data"]["ca.crt"]
        b = one(render(), "Secret")["data"]["ca.crt"]
        self.assertNotEqual(a, b)

    def test_cert_manager_mode_issues_the_mounted_secret_for_the_service_and_injects_the_ca(self):
        docs = render("webhook.certificate.mode=certManager")
        self.assertEqual(by_kind(docs, "Secret"), [])
        mounted = mounted_secret(docs, "/etc/backup-operator/webhook")
        certs = {c["metadata"]["name"]: c for c in by_kind(docs, "Certificate")}
        leaf = [c for c in certs.values() if c["spec"]["secretName"] == mounted]
        self.assertEqual(len(leaf), 1, certs)
        leaf = leaf[0]
        mwc = one(docs, "MutatingWebhookConfiguration")
        svc = mwc["webhooks"][0]["clientConfig"]["service"]["name"]
        self.assertIn(f"{svc}.{NS}.svc", leaf["spec"]["dnsNames"])
        self.assertIn(f"{svc}.{NS}.svc.cluster.local", leaf["spec"]["dnsNames"])
        self.assertEqual(mwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"], f"{NS}/{leaf['metadata']['name']}")
        self.assertNotIn("caBundle", mwc["webhooks"][0]["clientConfig"])
        # Self-signed chain: selfSigned Issuer -> CA Certificate -> CA Issuer -> leaf.
        issuers = {i["metadata"]["name"]: i["spec"] for i in by_kind(docs, "Issuer")}
        ca_issuer = issuers[leaf["spec"]["issuerRef"]["name"]]
        ca_cert = [c for c in certs.values() if c["spec"]["secretName"] == ca_issuer["ca"]["secretName"]][0]
        self.assertTrue(ca_cert["spec"]["isCA"])
        self.assertEqual(issuers[ca_cert["spec"]["issuerRef"]["name"]], {"selfSigned": {}})

    def test_cert_manager_mode_with_a_named_issuer_makes_no_issuer(self):
        docs = render("webhook.certificate.mode=certManager", "webhook.certificate.certManager.issuerRef.name=corp-ca",
                      "webhook.certificate.certManager.issuerRef.kind=ClusterIssuer")
        self.assertEqual(by_kind(docs, "Issuer"), [])
        cert = one(docs, "Certificate")
        self.assertEqual(cert["spec"]["issuerRef"], {"name": "corp-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"})

    def test_secret_mode_mounts_the_given_secret_and_sets_the_given_ca_bundle(self):
        docs = render("webhook.certificate.mode=secret", "webhook.certificate.existingSecret=tls",
                      "webhook.certificate.caBundle=Zm9v")
        self.assertEqual(by_kind(docs, "Secret"), [])
        self.assertEqual(mounted_secret(docs, "/etc/backup-operator/webhook"), "tls")
        self.assertEqual(one(docs, "MutatingWebhookConfiguration")["webhooks"][0]["clientConfig"]["caBundle"], "Zm9v")

    # --- watched namespaces: Roles, not ClusterRoles ---
    CLUSTER_SCOPED = {"namespaces", "validatingadmissionpolicies", "validatingadmissionpolicybindings",
                      "subjectaccessreviews", "tokenreviews"}

    def granted(self, role):
        return {(g, r, v) for rule in role["rules"] for g in rule.get("apiGroups", [])
                for r in rule.get("resources", []) for v in rule["verbs"]}

    def test_watch_namespaces_grant_roles_in_each_and_the_cluster_role_only_cluster_scoped_resources(self):
        docs = render("watchNamespaces={shop,shop-verify}")
        self.assertEqual(flag(docs, "--watch-namespace"), "shop,shop-verify")
        cluster = [r for r in by_kind(docs, "ClusterRole") if r["metadata"]["name"] == "bo-backup-operator"][0]
        self.assertEqual({r for _, r, _ in self.granted(cluster)}, self.CLUSTER_SCOPED)
        roles = {r["metadata"]["namespace"]: r for r in by_kind(docs, "Role")
                 if r["metadata"]["name"] == "bo-backup-operator"}
        self.assertEqual(set(roles), {"shop", "shop-verify"})
        for ns, role in roles.items():
            grants = self.granted(role)
            self.assertIn(("", "secrets", "get"), grants)
            self.assertIn(("batch", "jobs", "create"), grants)
            self.assertFalse({r for _, r, _ in grants} & self.CLUSTER_SCOPED, ns)
            binding = [b for b in by_kind(docs, "RoleBinding")
                       if b["metadata"]["namespace"] == ns and b["metadata"]["name"] == "bo-backup-operator"]
            self.assertEqual(len(binding), 1, ns)
            self.assertEqual(binding[0]["roleRef"], {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                                     "name": "bo-backup-operator"})
            self.assertEqual(binding[0]["subjects"], [{"kind": "ServiceAccount", "name": "bo-backup-operator",
                                                       "namespace": NS}])

    def test_without_watch_namespaces_one_cluster_role_holds_every_grant(self):
        docs = render()
        self.assertIsNone(flag(docs, "--watch-namespace"))
        self.assertEqual([r for r in by_kind(docs, "Role") if r["metadata"]["name"] == "bo-backup-operator"], [])
        cluster = [r for r in by_kind(docs, "ClusterRole") if r["metadata"]["name"] == "bo-backup-operator"][0]
        self.assertIn(("", "secrets", "get"), self.granted(cluster))
        self.assertIn(("", "namespaces", "get"), self.granted(cluster))

    def test_the_older_single_watch_namespace_still_works_and_joins_the_list(self):
        docs = render("watchNamespace=legacy", "watchNamespaces={shop}")
        self.assertEqual(flag(docs, "--watch-namespace"), "shop,legacy")
        self.assertEqual({r["metadata"]["namespace"] for r in by_kind(docs, "Role")
                          if r["metadata"]["name"] == "bo-backup-operator"}, {"shop", "legacy"})

    # --- the PrometheusRule and the Grafana dashboard ---
    def test_prometheus_rule_holds_the_shipped_rules_unchanged_by_default(self):
        with open(os.path.join(CHART, "files/prometheus-rules.yaml")) as f:
            shipped = yaml.safe_load(f)
        self.assertEqual(one(render("prometheusRule.enabled=true"), "PrometheusRule")["spec"], shipped)

    def test_prometheus_rule_for_replaces_or_adds_the_for_of_every_rule_of_that_alert(self):
        spec = one(render("prometheusRule.enabled=true", "prometheusRule.for.BackupMissed=10s",
                          "prometheusRule.for.VerificationFailed=20s"), "PrometheusRule")["spec"]
        with open(os.path.join(CHART, "files/prometheus-rules.yaml")) as f:
            shipped = yaml.safe_load(f)
        rules = spec["groups"][0]["rules"]
        self.assertEqual([r.get("for") for r in rules if r["alert"] == "BackupMissed"], ["10s", "10s"])
        self.assertEqual([r.get("for") for r in rules if r["alert"] == "VerificationFailed"], ["20s"])
        # Everything else as shipped.
        for got, want in zip(rules, shipped["groups"][0]["rules"]):
            if got["alert"] not in ("BackupMissed", "VerificationFailed"):
                self.assertEqual(got, want)
            else:
                self.assertEqual({k: v for k, v in got.items() if k != "for"},
                                 {k: v for k, v in want.items() if k != "for"})

    def test_grafana_dashboard_is_a_configmap_with_the_sidecar_label_only_when_enabled(self):
        self.assertEqual(by_kind(render(), "ConfigMap"), [])
        cm = one(render("grafanaDashboard.enabled=true", "grafanaDashboard.annotations.grafana_folder=Backups"),
                 "ConfigMap")
        self.assertEqual(cm["metadata"]["labels"]["grafana_dashboard"], "1")
        self.assertEqual(cm["metadata"]["annotations"], {"grafana_folder": "Backups"})
        self.assertEqual(cm["metadata"]["namespace"], NS)
        dashboard = json.loads(cm["data"]["backup-operator.json"])
        with open(os.path.join(CHART, "files/grafana-dashboard.json")) as f:
            self.assertEqual(dashboard, json.load(f))
        # Every panel reads the data source variable.
        self.assertEqual([v["name"] for v in dashboard["templating"]["list"] if v["type"] == "datasource"], ["datasource"])
        for p in dashboard["panels"]:
            if p["type"] != "row":
                self.assertEqual(p["datasource"]["uid"], "${datasource}", p["title"])
        cm = one(render("grafanaDashboard.enabled=true", "grafanaDashboard.namespace=monitoring",
                        "grafanaDashboard.labels.grafana_dashboard=backups"), "ConfigMap")
        self.assertEqual((cm["metadata"]["namespace"], cm["metadata"]["labels"]["grafana_dashboard"]),
                         ("monitoring", "backups"))

    # --- resources ---
    def test_memory_limit_is_twice_the_measured_peak_rounded_up(self):
        # The rule values.yaml states, against the largest fleet in the
        # "Figures" table of docs/performance.md: re-measuring there moves the limit here.
        with open(os.path.join(CHART, "../../docs/performance.md")) as f:
            figures = f.read().split("\n## Figures\n", 1)[1].split("\n## ", 1)[0]
        header = next((line.split("|") for line in figures.splitlines() if line.startswith("|") and "peak RSS" in line), None)
        self.assertTrue(header, "no 'peak RSS' column in the Figures table of docs/performance.md")
        column = [h.strip() for h in header].index("peak RSS")
        rows = [line.split("|") for line in figures.splitlines() if re.match(r"^\|\s*\d+\s*\|", line)]
        self.assertTrue(rows, "no rows in the Figures table of docs/performance.md")
        largest = max(rows, key=lambda r: int(r[1]))
        peak = float(re.match(r"\s*([0-9.]+) MiB", largest[column]).group(1))
        expected = 2 ** math.ceil(math.log2(2 * peak))
        limits = pod_spec(render())["containers"][0]["resources"]["limits"]
        self.assertEqual(limits["memory"], f"{expected}Mi", f"peak {peak} MiB at {largest[1].strip()} policies")


if __name__ == "__main__":
    unittest.main()
