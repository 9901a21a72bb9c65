"""Alluvium on a real single-node Kubernetes cluster (kube-apiserver, kubelet and containerd from
the kit): the chart README's quick start run as written (helm install to a Job reading a PVC),
job pods writing and reading a dynamically provisioned PVC, the CSI node plugin killed under a
reader, a quiet minute counted at the apiserver, Mount updates and deletions, and the README's
uninstall leaving nothing behind. Tests run in file order and build on each other."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time


sys.path.insert(0, str(pathlib.Path(__file__).parent))
from kit import BUSYBOX, REPO, S3_ENDPOINT, eventually  # noqa: E402

SYSTEM_NS = "alluvium-system"
NS = "data"
CHART = REPO / "charts" / "alluvium"
HERE = pathlib.Path(__file__).parent

# What the quiet-minute test counts: writes by non-system clients to what the operator owns.
OPERATOR_RESOURCES = {
    ("alluvium.io", "clusters"), ("alluvium.io", "mounts"), ("alluvium.io", "tiers"),
    ("", "configmaps"), ("", "services"), ("", "secrets"), ("", "persistentvolumes"),
    ("", "persistentvolumeclaims"), ("", "events"), ("events.k8s.io", "events"),
    ("apps", "statefulsets"), ("apps", "daemonsets"), ("apps", "deployments"),
    ("batch", "jobs"),
}
WRITE_VERBS = {"POST", "PUT", "PATCH", "APPLY", "DELETE"}


def readme_block(marker: str) -> str:
    """The shell block between `<!-- MARKER:begin -->` and `<!-- MARKER:end -->` of the chart's
    README."""
    text = (CHART / "README.md").read_text()
    body = text.split(f"<!-- {marker}:begin -->", 1)[1].split(f"<!-- {marker}:end -->", 1)[0]
    return body.strip().removeprefix("```sh").removesuffix("```").strip() + "\n"


def run_readme(kit, marker: str, timeout: float = 1200) -> str:
    """Runs a README block with bash -e as a user would: in a scratch directory holding the
    repository's charts/ and examples/, with kubectl, the AWS CLI and `helm` on PATH (the e2e
    shim over the real Helm library, since no Helm binary can be installed here)."""
    work = pathlib.Path(tempfile.mkdtemp(prefix=f"alluvium-{marker}-"))
    for d in ("charts", "examples"):
        (work / d).symlink_to(REPO / d)
    env = dict(kit.env)
    env["PATH"] = os.pathsep.join([str(HERE), str(pathlib.Path(sys.executable).parent),
                                   env["PATH"]])
    env.update(S3_ENDPOINT=S3_ENDPOINT, AWS_ACCESS_KEY_ID="e2e", AWS_SECRET_ACCESS_KEY="e2e-secret")
    p = subprocess.run(["bash", "-euxo", "pipefail", "-c", readme_block(marker)], cwd=work,
                       env=env, capture_output=True, text=True, timeout=timeout)
    out = p.stdout + p.stderr
    print(out[-8000:])
    assert p.returncode == 0, f"README block '{marker}' failed ({p.returncode}):\n{out[-6000:]}\n{diagnose(kit)}"
    return p.stdout


def mount(name: str, path: str, bucket: str, **spec) -> dict:
    body = {
        "cluster": "demo", "path": path, "ufs": f"s3://{bucket}/",
        "credentialsSecretRef": {"name": "s3"},
        "options": {"readOnly": True, "syncInterval": "60s",
                    "extra": {"endpoint": S3_ENDPOINT, "region": "us-east-1"}},
    }
    body.update(spec)
    return {"apiVersion": "alluvium.io/v1alpha1", "kind": "Mount", "metadata": {"name": name},
            "spec": body}


def job(name: str, script: str, claim: str, read_only: bool = True) -> dict:
    return {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never",
            "securityContext": {"runAsNonRoot": True, "runAsUser": 1000,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "main", "image": BUSYBOX, "imagePullPolicy": "Never",
                "command": ["sh", "-ec", script],
                "securityContext": {"allowPrivilegeEscalation": False,
                                    "capabilities": {"drop": ["ALL"]}},
                "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": read_only,
                                  "mountPropagation": "HostToContainer"}],
            }],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim,
                                                                   "readOnly": read_only}}],
        }}},
    }


def run_job(kit, doc: dict, timeout: float = 180) -> str:
    name = doc["metadata"]["name"]
    kit.kubectl("delete", "job", name, "-n", NS, "--ignore-not-found", "--wait=true")
    kit.apply([doc], namespace=NS)

    def finished():
        j = kit.get("job", name, NS) or {}
        for c in j.get("status", {}).get("conditions", []):
            if c["type"] in ("Complete", "Failed") and c["status"] == "True":
                return c["type"]
        return None

    outcome = eventually(f"job {name} to finish", finished, timeout=timeout)
    logs = kit.logs(f"job/{name}", "-n", NS)
    assert outcome == "Complete", f"job {name} failed:\n{logs}\n{diagnose(kit)}"
    return logs


def diagnose(kit) -> str:
    parts = []
    for args in (["get", "pods", "-A", "-o", "wide"], ["get", "acluster,amount", "-A", "-o", "yaml"],
                 ["get", "events", "-n", NS, "--sort-by=.lastTimestamp"]):
        parts.append(kit.kubectl_rc(*args).stdout[-6000:])
    parts.append(kit.logs("-n", SYSTEM_NS, "deploy/alluvium-operator", "--tail=60"))
    return "\n".join(parts)


def phase(kit, kind: str, name: str) -> str | None:
    obj = kit.get(kind, name, NS) or {}
    return obj.get("status", {}).get("phase")


# ---- the tests, in order -------------------------------------------------------------------


def test_readme_quick_start_runs_as_written(kit, s3):
    # The platform's part: a volume for the master's journal (the kit has no provisioner).
    kit.script("pv", "journal-demo", "2Gi")
    out = run_readme(kit, "quickstart")
    assert "hello.txt: OK" in out
    status = kit.get("amount", "datasets", NS)["status"]
    assert status["totalBytes"] >= 8 << 20, status
    assert status["cachedBytes"] == status["totalBytes"], status
    print(kit.kubectl("get", "pods", "-A", "-o", "wide"))


def test_dynamic_pvc_written_by_one_pod_and_read_by_another(kit):
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "scratch"},
           "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "alluvium",
                    "resources": {"requests": {"storage": "1Gi"}}}}
    kit.apply([pvc], namespace=NS)
    eventually("PVC scratch Bound", lambda: (kit.get("pvc", "scratch", NS) or {}).get(
        "status", {}).get("phase") == "Bound", timeout=120)
    run_job(kit, job("write-scratch",
                     "head -c 3000000 /dev/urandom > /data/part-0000 && "
                     "cd /data && sha256sum part-0000 > part-0000.sha256 && ls -l /data",
                     "scratch", read_only=False))
    logs = run_job(kit, job("read-scratch", "cd /data && sha256sum -c part-0000.sha256",
                            "scratch"))
    print(logs)
    assert "part-0000: OK" in logs


def _csi_node_pid() -> int:
    """The host PID of the CSI node plugin (`alluvium csi ... --mode=node`)."""
    for p in pathlib.Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"alluvium") and b"csi" in cmd and b"--mode=node" in cmd:
            return int(p.name)
    raise AssertionError("no CSI node plugin process")


def test_reader_recovers_after_csi_node_plugin_is_killed(kit):
    reader = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "reader"},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {"runAsNonRoot": True, "runAsUser": 1000},
            "containers": [{
                "name": "main", "image": BUSYBOX, "imagePullPolicy": "Never",
                # One line per read, stamped with the kernel's uptime (the host's clock too).
                "command": ["sh", "-c",
                            "while true; do u=$(cut -d' ' -f1 /proc/uptime); "
                            "if sha256sum -c /data/hello.txt.sha256 >/dev/null 2>&1 </dev/null;"
                            " then echo ok $u; else echo fail $u; fi; "
                            "cd /data 2>/dev/null || cd /; sleep 0.05; done"],
                "workingDir": "/data",
                "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": True,
                                  "mountPropagation": "HostToContainer"}],
            }],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "datasets",
                                                                   "readOnly": True}}],
        },
    }
    kit.apply([reader], namespace=NS)
    eventually("reader reading", lambda: " ok " in " " + kit.logs("reader", "-n", NS), timeout=90)
    restarts_before = _csi_restarts(kit)
    killed_at = float(pathlib.Path("/proc/uptime").read_text().split()[0])
    os.kill(_csi_node_pid(), 9)

    def recovered():
        lines = [l.split() for l in kit.logs("reader", "-n", NS).splitlines()]
        after = [(s, float(t)) for s, t in (l for l in lines if len(l) == 2) if float(t) > killed_at]
        for i, (state, t) in enumerate(after):
            if state == "ok" and any(s == "fail" for s, _ in after[:i]):
                return t - killed_at, sum(1 for s, _ in after[:i] if s == "fail")
            if state == "ok" and i > 0:
                # Reads never failed: the kill landed between two reads and recovery was quick.
                return t - killed_at, 0
        return None

    took, failed_reads = eventually("reader reading again after the kill", recovered, timeout=120)
    assert _csi_restarts(kit) > restarts_before
    print(f"CSI node plugin killed: reader read again {took * 1000:.0f} ms later "
          f"({failed_reads} failed reads in between)")
    kit.kubectl("delete", "pod", "reader", "-n", NS, "--grace-period=0", "--force")


def _csi_restarts(kit) -> int:
    pods = kit.items("pods", SYSTEM_NS, "app.kubernetes.io/component=csi-node")
    return sum(c.get("restartCount", 0) for p in pods
               for c in p.get("status", {}).get("containerStatuses", []) if c["name"] == "csi-node")


def _operator_writes(kit) -> dict:
    return {k: v for k, v in kit.request_counts().items()
            if k[0] in WRITE_VERBS and (k[1], k[2]) in OPERATOR_RESOURCES and k[4] == ""}


def test_a_quiet_minute_costs_no_writes(kit):
    """At rest (a Running cluster, a Ready mount, nothing changing) the operator writes nothing:
    every PATCH/APPLY/POST/PUT/DELETE to what it owns, counted by the apiserver, over a minute."""
    eventually("Cluster Running and Mount Ready", lambda: phase(kit, "acluster", "demo") == "Running"
               and phase(kit, "amount", "datasets") == "Ready", timeout=120)
    # Settle: the earlier tests changed what status reports (cached and used bytes), and the
    # Cluster's refresh (every 30 s) rightly writes such a change once. At rest means after a
    # refresh period with no write; a writer that never stops fails here, one with a longer
    # period is caught by the minute below.
    quiet_since, last = time.monotonic(), _operator_writes(kit)
    deadline = time.monotonic() + 180
    while time.monotonic() - quiet_since < 35:
        assert time.monotonic() < deadline, f"the operator never stopped writing: {last}"
        time.sleep(1)
        now = _operator_writes(kit)
        if now != last:
            quiet_since, last = time.monotonic(), now
    before = _operator_writes(kit)
    time.sleep(60)
    after = _operator_writes(kit)
    diff = {"/".join(k[:4]): after[k] - before.get(k, 0) for k in after
            if after[k] - before.get(k, 0) > 0}
    print(f"writes to operator-owned resources over a quiet minute: {sum(diff.values()):.0f} {diff}")
    assert diff == {}, f"writes at rest: {diff}\n{diagnose(kit)}"


def test_nested_mount_path_gets_its_parents(kit, s3):
    s3.create_bucket(Bucket="logs")
    s3.put_object(Bucket="logs", Key="day1.log", Body=b"one\n")
    kit.apply([mount("logs", "/mnt/logs/2026", "logs")], namespace=NS)
    eventually("Mount logs Mounted", lambda: phase(kit, "amount", "logs") == "Mounted",
               timeout=120)


def test_mount_update_reaches_the_master(kit):
    kit.kubectl("patch", "amount", "logs", "-n", NS, "--type=merge",
                "-p", json.dumps({"spec": {"options": {"syncInterval": "17m"}}}))

    def master_sees():
        out = kit.kubectl("exec", "-n", NS, "demo-master-0", "--", "alluvium", "fs", "mount",
                          check=False) or ""
        return re.search(r"on /mnt/logs/2026 \(.*sync_interval=17m", out)

    eventually("the master's mount table to carry syncInterval 17m", master_sees, timeout=90)
    m = kit.get("amount", "logs", NS)
    assert m["status"]["observedGeneration"] == m["metadata"]["generation"]


def test_mount_of_a_missing_cluster_deletes_at_once(kit):
    doc = mount("orphan", "/orphan", "datasets")
    doc["spec"]["cluster"] = "no-such-cluster"
    kit.apply([doc], namespace=NS)
    eventually("Mount orphan Pending", lambda: phase(kit, "amount", "orphan") == "Pending",
               timeout=60)
    kit.kubectl("delete", "amount", "orphan", "-n", NS, "--timeout=60s", timeout=70)


def test_readme_uninstall_leaves_nothing_behind(kit, s3):
    start = time.monotonic()
    for m in ("logs",):
        kit.kubectl("delete", "amount", m, "-n", NS, "--ignore-not-found", "--timeout=120s",
                    timeout=130)
    # The jobs' pods still name the claim (PVC protection waits for them).
    kit.kubectl("delete", "job", "write-scratch", "read-scratch", "-n", NS, "--ignore-not-found",
                "--cascade=foreground", "--timeout=120s", timeout=130)
    pv = ((kit.get("pvc", "scratch", NS) or {}).get("spec") or {}).get("volumeName")
    kit.kubectl("delete", "pvc", "scratch", "-n", NS, "--ignore-not-found", "--timeout=120s",
                timeout=130)
    # Its PV goes once the provisioner's DeleteVolume has removed the directory, which needs
    # the Cluster's master: wait for that before the Cluster goes.
    eventually("the dynamic PV to be deleted", lambda: not [
        p for p in kit.items("pv") if p["spec"].get("claimRef", {}).get("name") == "scratch"],
        timeout=120)
    if pv:
        left_in_ufs = s3.list_objects_v2(Bucket="alluvium-root", Prefix=f"pvc/{pv}")
        assert left_in_ufs.get("KeyCount", 0) == 0, left_in_ufs.get("Contents")
    run_readme(kit, "uninstall", timeout=600)
    took = time.monotonic() - start
    left = {
        "namespaces": [n["metadata"]["name"] for n in kit.items("namespaces")
                       if n["metadata"]["name"] in (NS, SYSTEM_NS)],
        "alluvium pvs": [p["metadata"]["name"] for p in kit.items("pv")
                         if p["spec"].get("csi", {}).get("driver") == "csi.alluvium.io"],
        "crds": [c["metadata"]["name"] for c in kit.items("crd")
                 if c["metadata"]["name"].endswith(".alluvium.io")],
        "cluster objects": [f"{o['kind']}/{o['metadata']['name']}" for kind in
                            ("clusterroles", "clusterrolebindings", "storageclasses", "csidrivers")
                            for o in kit.items(kind) if "alluvium" in o["metadata"]["name"]],
        "fuse mounts": [l for l in pathlib.Path("/proc/mounts").read_text().splitlines()
                        if "fuse" in l and "/var/lib/kubelet" in l],
    }
    print(f"uninstall took {took:.1f}s; left: {left}")
    # CRDs are not removed by `helm uninstall` (Helm never deletes CRDs): delete them here.
    assert left["namespaces"] == [] and left["alluvium pvs"] == [] and left["fuse mounts"] == [], left
    assert left["cluster objects"] == [], left
    for c in left["crds"]:
        kit.kubectl("delete", "crd", c, "--timeout=60s", timeout=70)
    kit.kubectl("delete", "pv", "journal-demo", "--ignore-not-found", "--timeout=60s", timeout=70)
