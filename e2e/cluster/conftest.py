"""A real single-node Kubernetes cluster for the whole module: the kit's control plane and node,
the Alluvium image made from the freshly built binary, the CSI sidecars, a busybox image for job
pods, and an S3 server (moto) on the node's bridge address that pods reach as under-storage."""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys

import boto3
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from kit import (  # noqa: E402
    BUSYBOX, IMAGE, MOTO_PID_FILE, NODE_IP, S3_ENDPOINT, S3_PORT, TIER_DIRS, TIER_ROOTS, Kit,
    eventually, missing_requirements,
)

def binary() -> str:
    explicit = os.environ.get("ALLUVIUM_BIN")
    if explicit:
        return explicit
    target = os.environ.get("CARGO_TARGET_DIR", str(pathlib.Path.home() / ".cache/alluvium/target"))
    return str(pathlib.Path(target) / "debug" / "alluvium")


@pytest.fixture(scope="session")
def kit():
    why = missing_requirements()
    if why:
        pytest.fail(f"e2e/cluster needs a real cluster: {why}", pytrace=False)
    exe = binary()
    if not os.access(exe, os.X_OK):
        pytest.fail(f"e2e/cluster: no alluvium binary at {exe} (cargo build, or set ALLUVIUM_BIN)",
                    pytrace=False)
    k = Kit()
    # Whatever an interrupted run left (processes, pods, mounts, etcd data) goes first: `up` on
    # an old work dir would resume the old cluster, with its namespaces and volumes.
    k.down()
    k.up()
    for d in TIER_ROOTS:
        pathlib.Path(d).mkdir(parents=True, exist_ok=True)
        k.script("sharedmount", d)
    # One image for every Alluvium process, as the Dockerfile makes it, from this build.
    k.image_exe(IMAGE, exe, "--dest", "/usr/local/bin/alluvium",
                "--add", "/usr/bin/fusermount3", "--user", "1000:1000")
    busybox = shutil.which("busybox") or "/bin/busybox"  # busybox-static
    k.image_exe(BUSYBOX, busybox, "--applets", "--cmd", "sh")
    k.script("image-sidecars")
    yield k
    if os.environ.get("ALLUVIUM_E2E_KEEP") == "1":
        print(f"\nALLUVIUM_E2E_KEEP=1: cluster left running "
              f"(export ALLUVIUM_K8S_WORK={k.work}; eval \"$({k.dir}/env)\")")
        return
    k.down()
    for d in TIER_DIRS:
        shutil.rmtree(d, ignore_errors=True)


def stop_stale_moto() -> None:
    """Stops the moto server an interrupted run left (by its PID file, only if that process is
    still a moto server), so this run's server gets the port and starts with no buckets."""
    try:
        pid = int(MOTO_PID_FILE.read_text())
        cmdline = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if b"moto_server" in cmdline:
        os.kill(pid, signal.SIGKILL)
        eventually("the old moto server to exit", lambda: not pathlib.Path(f"/proc/{pid}").exists(),
                   timeout=10, interval=0.1)
    MOTO_PID_FILE.unlink(missing_ok=True)


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


@pytest.fixture(scope="session")
def s3(kit):
    """moto's S3 server on the node's bridge address, with the buckets the tests use."""
    stop_stale_moto()
    moto = shutil.which("moto_server") or str(pathlib.Path(sys.executable).parent / "moto_server")
    log = open(kit.work / "moto.log", "w")
    proc = subprocess.Popen([moto, "-H", NODE_IP, "-p", str(S3_PORT)], stdout=log,
                            stderr=subprocess.STDOUT)
    MOTO_PID_FILE.write_text(str(proc.pid))
    try:
        eventually("moto S3 server", lambda: _port_open(NODE_IP, S3_PORT), timeout=30)
        client = boto3.client("s3", endpoint_url=S3_ENDPOINT, region_name="us-east-1",
                              aws_access_key_id="e2e", aws_secret_access_key="e2e-secret")
        yield client
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        MOTO_PID_FILE.unlink(missing_ok=True)
