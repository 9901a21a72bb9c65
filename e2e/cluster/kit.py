"""The single-node Kubernetes kit (`../shared/k8s`) driven from Python: bring a real control
plane and node up, build images from the freshly built `alluvium` binary, run kubectl, wait
for conditions with bounded polls, and read the apiserver's request counters."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import time
from typing import Any, Callable, Iterable

import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]

# The chart's and the Cluster's default image (the chart's appVersion), made from this build.
IMAGE = "alluvium/alluvium:0.1.0"
# What examples/job.yaml runs.
BUSYBOX = "busybox:1.36"
# The node's bridge address: pods reach the host there (the kit routes nothing else).
NODE_IP = "10.88.0.1"
S3_PORT = 5055
S3_ENDPOINT = f"http://{NODE_IP}:{S3_PORT}"
# The chart's default `csi.node.tierPaths`: the CSI node plugin mounts them with mount
# propagation, which needs shared mounts on a machine whose `/` is private (kit README).
TIER_ROOTS = ["/dev/shm/alluvium", "/var/lib/alluvium"]
# Removed after the suite (examples/tiers.yaml puts its tiers there).
TIER_DIRS = TIER_ROOTS


# The suite's own kit work dir (all cluster state: etcd, containerd, PVs), wiped before and after
# the suite so a run never meets a cluster left by an interrupted one, nor a developer's own
# cluster in the kit's default /tmp/alluvium-k8s. Short: containerd's socket lives in it.
WORK_DIR = os.environ.get("ALLUVIUM_E2E_WORK", "/tmp/alluvium-e2e-k8s")
# moto's PID, kept outside the work dir so a run can stop the one an interrupted run left.
MOTO_PID_FILE = pathlib.Path(WORK_DIR + ".moto.pid")


def kit_dir() -> pathlib.Path:
    """Where the kit lives: $ALLUVIUM_K8S_KIT, else `../shared/k8s` beside the repository."""
    return pathlib.Path(os.environ.get("ALLUVIUM_K8S_KIT") or REPO.parent / "shared" / "k8s")


def missing_requirements() -> str | None:
    """One line saying what this suite needs and does not have, or None."""
    kit = kit_dir()
    if not (kit / "controlplane").is_file():
        return (
            f"the Kubernetes kit is not at {kit}: point ALLUVIUM_K8S_KIT at a copy of "
            "shared/k8s (kube-apiserver, kubelet, containerd from Debian; see its README)"
        )
    if os.geteuid() != 0:
        return "a real node needs root (kubelet, containerd, FUSE mounts): run the suite as root"
    for tool in ("etcd", "containerd", "runc"):
        if not shutil.which(tool) and not pathlib.Path(f"/usr/bin/{tool}").exists():
            return (
                f"'{tool}' is missing: apt-get install etcd-server containerd runc "
                "containernetworking-plugins busybox-static (scripts/setup.sh does)"
            )
    return None


def run(args: list[str], *, input: str | None = None, check: bool = True,
        timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    p = subprocess.run(args, input=input, capture_output=True, text=True, timeout=timeout,
                       env=env)
    if check and p.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {p.returncode}\nstdout: {p.stdout[-4000:]}\n"
            f"stderr: {p.stderr[-4000:]}")
    return p


def eventually(what: str, fn: Callable[[], Any], timeout: float = 120,
               interval: float = 1.0) -> Any:
    """Polls `fn` until it returns something truthy; fails naming `what` and the last value or
    error after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - report the last error when time runs out
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


class Kit:
    """A running control plane and node, with kubectl on PATH."""

    def __init__(self) -> None:
        self.dir = kit_dir()
        self.env = dict(os.environ)
        self.env["ALLUVIUM_K8S_WORK"] = WORK_DIR
        out = run([str(self.dir / "env")], env=self.env).stdout
        for line in out.splitlines():
            if line.startswith("export "):
                k, _, v = line[len("export "):].partition("=")
                self.env[k] = os.path.expandvars(v.strip().strip("'\""))
        self.work = pathlib.Path(self.env["ALLUVIUM_K8S_WORK"])

    def script(self, name: str, *args: str, timeout: float = 300) -> str:
        return run([str(self.dir / name), *args], env=self.env, timeout=timeout).stdout

    def up(self) -> None:
        out = self.script("controlplane", "up")
        for line in out.splitlines():
            if line.startswith("export KUBECONFIG="):
                self.env["KUBECONFIG"] = line.split("=", 1)[1].strip().strip("'\"")
        self.script("node", "up")

    def down(self) -> None:
        run([str(self.dir / "node"), "down", "--wipe"], env=self.env, check=False, timeout=300)
        run([str(self.dir / "controlplane"), "down", "--wipe"], env=self.env, check=False,
            timeout=300)

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 120) -> str:
        return run(["kubectl", *args], input=input, check=check, timeout=timeout,
                   env=self.env).stdout

    def kubectl_rc(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return run(["kubectl", *args], check=False, timeout=timeout, env=self.env)

    def apply(self, docs: Iterable[dict[str, Any]] | str, namespace: str | None = None) -> None:
        text = docs if isinstance(docs, str) else yaml.safe_dump_all(list(docs))
        args = ["apply", "-f", "-"]
        if namespace:
            args += ["-n", namespace]
        self.kubectl(*args, input=text)

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        args = ["get", kind, name, "-o", "json", "--ignore-not-found"]
        if namespace:
            args += ["-n", namespace]
        out = self.kubectl(*args)
        return json.loads(out) if out.strip() else None

    def items(self, kind: str, namespace: str | None = None, selector: str | None = None
              ) -> list[dict[str, Any]]:
        args = ["get", kind, "-o", "json"]
        args += ["-n", namespace] if namespace else ["-A"]
        if selector:
            args += ["-l", selector]
        return json.loads(self.kubectl(*args))["items"]

    def logs(self, *args: str) -> str:
        return self.kubectl_rc("logs", *args).stdout

    def request_counts(self) -> dict[tuple[str, ...], float]:
        """`apiserver_request_total` by (verb, group, resource, subresource, system_client)."""
        counts: dict[tuple[str, ...], float] = {}
        for line in self.kubectl("get", "--raw", "/metrics").splitlines():
            if not line.startswith("apiserver_request_total{"):
                continue
            labels_text, _, value = line[len("apiserver_request_total{"):].rpartition("} ")
            labels = dict(
                part.split("=", 1) for part in labels_text.split(",") if "=" in part)
            labels = {k: v.strip('"') for k, v in labels.items()}
            key = (labels.get("verb", ""), labels.get("group", ""), labels.get("resource", ""),
                   labels.get("subresource", ""), labels.get("system_client", ""))
            counts[key] = counts.get(key, 0.0) + float(value)
        return counts

    def image_exe(self, name: str, exe: str, *args: str) -> None:
        self.script("image-exe", name, exe, *args)
