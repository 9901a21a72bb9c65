"""The README tour, run as written so it never rots: the fenced block between the
`<!-- tour:begin -->` and `<!-- tour:end -->` comments of README.md runs in bash (`-e`, so every
step must succeed) against a fresh `alluvium local` and an S3 server on loopback (moto's server
mode), with the AWS CLI of this environment. Set ALLUVIUM_TOUR_TRANSCRIPT=FILE to keep what it
printed (each command echoed before its output)."""
import os
import re
import shutil
import socket
import subprocess
import sys
import time

import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tour_block():
    """The shell block between the tour markers, exactly."""
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    m = re.search(r"<!-- tour:begin -->\s*```sh\n(.*?)```\s*<!-- tour:end -->", readme, re.S)
    assert m, "README.md has no ```sh block between <!-- tour:begin --> and <!-- tour:end -->"
    return m.group(1)


def wait_http(url, proc, what, timeout=60):
    deadline = time.time() + timeout
    while True:
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"{what} did not start")
            time.sleep(0.2)


@pytest.fixture
def moto(tmp_path):
    port = free_port()
    server = os.path.join(os.path.dirname(sys.executable), "moto_server")
    log = open(tmp_path / "moto.log", "wb")
    proc = subprocess.Popen([server, "-H", "127.0.0.1", "-p", str(port)], stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url, proc, "moto_server")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


@pytest.fixture
def local(tmp_path):
    """`alluvium local` on free ports; yields the environment that reaches it."""
    binary = os.environ.get("ALLUVIUM_BIN") or shutil.which("alluvium")
    assert binary, "set ALLUVIUM_BIN to the alluvium binary"
    ports = {k: free_port() for k in ("MASTER__RPC_PORT", "MASTER__WEB_PORT", "WORKER__RPC_PORT",
                                      "WORKER__WEB_PORT", "PROXY__S3_PORT",
                                      "PROXY__WEBHDFS_PORT")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALLUVIUM_")}
    for k, v in ports.items():
        env["ALLUVIUM_" + k] = str(v)
    env["ALLUVIUM_PROXY__BIND_HOST"] = "127.0.0.1"
    env["ALLUVIUM_MASTER"] = f"127.0.0.1:{ports['MASTER__RPC_PORT']}"
    # `alluvium` and `aws` as a user has them: on the PATH.
    env["PATH"] = os.pathsep.join([os.path.dirname(os.path.abspath(binary)),
                                   os.path.dirname(sys.executable), env.get("PATH", "")])
    log = open(tmp_path / "local.log", "wb")
    proc = subprocess.Popen([binary, "local", "--data-dir", str(tmp_path / "data"),
                             "--mem", "256MiB"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{ports['MASTER__WEB_PORT']}/healthz", proc, "alluvium local")
        deadline = time.time() + 60
        while True:
            # Ready when the worker has registered (the tour's first write needs it).
            info = subprocess.run([binary, "fs", "masterInfo"], env=env, capture_output=True)
            if b"Live workers: 1" in info.stdout:
                break
            assert time.time() < deadline, "the worker did not register"
            time.sleep(0.2)
        yield env
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        # The MEM tier lives in /dev/shm, outside tmp_path: remove the one this cluster logged.
        text = (tmp_path / "local.log").read_text(errors="replace")
        for d in set(re.findall(r"/dev/shm/alluvium-local-[0-9a-f]+", text)):
            shutil.rmtree(d, ignore_errors=True)


def test_readme_tour_runs_as_written(local, moto, tmp_path):
    script = tmp_path / "tour.sh"
    script.write_text(tour_block())
    env = dict(local, TOUR=str(tmp_path / "tour"), S3_ENDPOINT=moto, HOME=str(tmp_path),
               XDG_CACHE_HOME=str(tmp_path / "cache"))
    # -v echoes each line before it runs; -e stops at the first failing step.
    run = subprocess.run(["bash", "-e", "-o", "pipefail", "-v", str(script)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    out = run.stdout.decode()
    keep = os.environ.get("ALLUVIUM_TOUR_TRANSCRIPT")
    if keep:
        with open(keep, "w") as f:
            f.write(out)
    assert run.returncode == 0, f"the tour failed (exit {run.returncode}):\n{out}"
    for needle in [
        "Successfully created directory /data/raw",
        "hello alluvium",
        "md5sum: e52c2e2fa06318b1e9692b0d5535e6dd",
        "Mounted s3://lake/events at /mnt/lake",
        "secret_access_key=******",
        "/mnt/lake/day1.log",
        "/mnt/logs/day3.log",
        "[6/6 files,",
        "distributedLoad /mnt: 6 files: 6 loaded",
        "(MEM)",
        "was successfully freed",
        "MISSING_IN_UFS",
        "MISSING_IN_ALLUVIUM",
        "/mnt is consistent with the UFS now",
        "Capacity information for all workers:",
    ]:
        assert needle in out, f"{needle!r} missing from the tour's output:\n{out}"
    table = [l for l in out.splitlines() if l.startswith("s3://lake/events on /mnt/lake")]
    assert table and all("secret_access_key=******" in l for l in table), out
