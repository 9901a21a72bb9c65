"""The Helm chart, linted and rendered offline with the real Helm library (helm-python-sdk),
for the default values and non-default ones; every rendered object is validated against the
Kubernetes schemas, bad values fail early through values.schema.json."""

import pytest
import helm_python as helm

from conftest import CHART, CRD_DIR, KUBE_VERSION, load_docs, load_file, validate_builtin

NON_DEFAULT = {
    "image": {"repository": "registry.example.com/alluvium", "tag": "dev", "pullPolicy": "Always"},
    "imagePullSecrets": ["regcred"],
    "operator": {
        "replicas": 2,
        "watchNamespace": "data",
        "httpPort": 9090,
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "storage", "effect": "NoSchedule"}],
    },
    "csi": {
        "kubeletDir": "/var/snap/microk8s/common/var/lib/kubelet",
        "node": {"tierPaths": ["/dev/shm", "/mnt/nvme"], "nodeSelector": {"alluvium.io/worker": "true"}},
        "controller": {"replicas": 2},
    },
    "storageClass": {"create": True, "name": "alluvium-fast", "master": "demo-master.data.svc:19998",
                     "clusterSecret": {"name": "demo-cluster-secret", "namespace": "data"}, "isDefault": True,
                     "reclaimPolicy": "Retain"},
}

VALUE_SETS = {
    "default": None,
    "non-default": NON_DEFAULT,
    "operator-only": {"csi": {"enabled": False}, "staticStorageClass": {"create": False}},
    "csi-only": {"operator": {"enabled": False}},
}


def render(values):
    chart = helm.Chart.load(str(CHART))
    out = chart.render(values, name="alluvium", namespace="alluvium-system", is_install=True)
    docs = []
    for name, text in sorted(out.items()):
        if name.endswith("NOTES.txt"):
            continue
        docs.extend(load_docs(text))
    return docs


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_lint_is_clean(values):
    report = helm.lint(str(CHART), values, strict=True, kube_version=f"v{KUBE_VERSION}")
    assert report["errors"] == [], report
    assert [m for m in report["messages"] if m["severity"] >= 2] == [], report


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_rendered_objects_are_valid_kubernetes(values):
    docs = render(values)
    assert docs
    for doc in docs:
        validate_builtin(doc)


def kinds(docs):
    return sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs)


def test_default_render_has_operator_csi_and_storage_classes():
    got = kinds(render(None))
    for want in [
        "CSIDriver/csi.alluvium.io",
        "DaemonSet/alluvium-csi-node",
        "Deployment/alluvium-csi-controller",
        "Deployment/alluvium-operator",
        "ClusterRole/alluvium-operator",
        "Role/alluvium-operator-leader",
        "StorageClass/alluvium-static",
    ]:
        assert want in got, got
    # The dynamic StorageClass names one Cluster's master: none exists before the user makes it.
    assert "StorageClass/alluvium" not in got, got


def test_storage_class_without_a_master_is_refused():
    chart = helm.Chart.load(str(CHART))
    with pytest.raises(helm.HelmError, match="storageClass.master"):
        chart.render({"storageClass": {"create": True}}, name="alluvium",
                     namespace="alluvium-system", is_install=True)


def test_csi_node_plugin_runs_as_root_and_the_controller_as_the_operator_user():
    docs = render(None)
    ds = next(d for d in docs if d["kind"] == "DaemonSet")
    node = next(c for c in ds["spec"]["template"]["spec"]["containers"] if c["name"] == "csi-node")
    assert node["securityContext"]["runAsUser"] == 0 and node["securityContext"]["privileged"]
    ctrl = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("csi-controller"))
    c = next(c for c in ctrl["spec"]["template"]["spec"]["containers"] if c["name"] == "csi-controller")
    assert {"name": "ALLUVIUM_CLIENT__USER", "value": "alluvium"} in c["env"]


def test_csi_node_propagates_mounts_and_registers():
    docs = render(None)
    ds = next(d for d in docs if d["kind"] == "DaemonSet")
    containers = {c["name"]: c for c in ds["spec"]["template"]["spec"]["containers"]}
    assert "node-driver-registrar" in containers
    mounts = {m["mountPath"]: m for m in containers["csi-node"]["volumeMounts"]}
    assert mounts["/var/lib/kubelet"]["mountPropagation"] == "Bidirectional"
    ctrl = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("csi-controller"))
    assert any("csi-provisioner" in c["image"] for c in ctrl["spec"]["template"]["spec"]["containers"])


def test_operator_rbac_is_least_privilege():
    docs = render(None)
    role = next(d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "alluvium-operator")
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule
        if "secrets" in rule["resources"]:
            # read one by name, and create the cluster secret; never list or watch them
            assert rule["verbs"] == ["get", "create"], rule


def test_non_default_values_take_effect():
    docs = render(NON_DEFAULT)
    op = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "alluvium-operator")
    assert op["spec"]["replicas"] == 2
    (container,) = op["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.example.com/alluvium:dev"
    assert "--namespace=data" in container["args"]
    sc = next(d for d in docs if d["kind"] == "StorageClass" and d["metadata"]["name"] == "alluvium-fast")
    assert sc["parameters"]["master"] == "demo-master.data.svc:19998"
    assert sc["parameters"]["csi.storage.k8s.io/node-stage-secret-name"] == "demo-cluster-secret"
    assert sc["parameters"]["csi.storage.k8s.io/provisioner-secret-namespace"] == "data"
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"


BAD_VALUES = [
    {"operator": {"replicas": "two"}},
    {"operator": {"replicsa": 2}},
    {"image": {"pullPolicy": "Sometimes"}},
    {"storageClass": {"master": "no-port"}},
    {"csi": {"kubeletDir": "relative"}},
    {"operator": {"resources": {"limits": {"memory": "lots"}}}},
]


@pytest.mark.parametrize("values", BAD_VALUES, ids=[str(v) for v in BAD_VALUES])
def test_bad_values_fail_early(values):
    chart = helm.Chart.load(str(CHART))
    with pytest.raises(helm.HelmValuesError):
        chart.validate_schema(values)
    with pytest.raises(helm.HelmError):
        chart.render(values, name="alluvium", namespace="alluvium-system", is_install=True)


def test_chart_crds_are_the_generated_ones():
    chart_crds = {p.name: p.read_text() for p in (CHART / "crds").glob("*.yaml")}
    generated = {p.name: p.read_text() for p in CRD_DIR.glob("*.alluvium.io.yaml")}
    assert chart_crds == generated


@pytest.mark.parametrize("path", sorted((CHART / "crds").glob("*.yaml")), ids=lambda p: p.name)
def test_chart_crds_are_valid_kubernetes(path):
    (crd,) = load_file(path)
    validate_builtin(crd)
