"""A real `alluvium local` cluster (master, worker with MEM and SSD tiers, gateways) on free
loopback ports, with a few files in it, and Debian's Chromium driven by Playwright.
ALLUVIUM_BIN names the binary; screenshots go to ALLUVIUM_ARTIFACTS (default e2e/ui/artifacts)."""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest
import requests

CHROMIUM = os.environ.get("ALLUVIUM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TEXT = "Alluvium keeps hot data in memory.\nThis line is shown by the web UI.\n"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, proc=None, timeout=60):
    deadline = time.time() + timeout
    while True:
        try:
            if requests.get(url, timeout=1).ok:
                return
        except requests.RequestException:
            pass
        if (proc is not None and proc.poll() is not None) or time.time() > deadline:
            raise RuntimeError(f"{url} did not answer")
        time.sleep(0.2)


class Cluster:
    def __init__(self, work):
        self.bin = os.environ.get("ALLUVIUM_BIN", "alluvium")
        self.ports = {k: free_port() for k in
                      ("MASTER__RPC_PORT", "MASTER__WEB_PORT", "WORKER__RPC_PORT",
                       "WORKER__WEB_PORT", "PROXY__S3_PORT", "PROXY__WEBHDFS_PORT")}
        self.env = dict(os.environ)
        self.env.pop("ALLUVIUM_CONFIG", None)
        for k, v in self.ports.items():
            self.env["ALLUVIUM_" + k] = str(v)
        self.env["ALLUVIUM_MASTER"] = f"127.0.0.1:{self.ports['MASTER__RPC_PORT']}"
        self.env["ALLUVIUM_PROXY__BIND_HOST"] = "127.0.0.1"
        self.env["ALLUVIUM_MASTER__BIND_HOST"] = "127.0.0.1"
        self.env["ALLUVIUM_WORKER__BIND_HOST"] = "127.0.0.1"
        # Small blocks, so a 3 MiB file shows several blocks.
        self.env["ALLUVIUM_MASTER__DEFAULT_BLOCK_SIZE"] = "1MiB"
        self.log = open(os.path.join(work, "local.log"), "wb")
        self.proc = subprocess.Popen(
            [self.bin, "local", "--data-dir", os.path.join(work, "data"), "--mem", "256MiB",
             "--ssd", "256MiB"],
            env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        self.master_url = f"http://127.0.0.1:{self.ports['MASTER__WEB_PORT']}"
        self.worker_url = f"http://127.0.0.1:{self.ports['WORKER__WEB_PORT']}"
        wait_http(self.master_url + "/healthz", self.proc)
        wait_http(self.worker_url + "/healthz", self.proc)

    def fs(self, *args):
        out = subprocess.run([self.bin, "fs", *args], env=self.env, capture_output=True)
        assert out.returncode == 0, f"fs {args}: {out.stderr.decode()}"
        return out.stdout.decode()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        # `alluvium local` keeps its MEM tier in /dev/shm (kept across restarts); this cluster
        # is gone for good, so its tier goes too.
        with open(self.log.name, errors="replace") as f:
            for line in f:
                m = re.search(r"tier MEM .* in (/dev/shm/alluvium-local-[0-9a-f]+)", line)
                if m:
                    shutil.rmtree(m.group(1), ignore_errors=True)


@pytest.fixture(scope="session")
def moto():
    """A real S3 endpoint (moto's server mode) on loopback."""
    port = free_port()
    server = os.path.join(os.path.dirname(sys.executable), "moto_server")
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([server, "-H", "127.0.0.1", "-p", str(port)], stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_http(url, proc, timeout=30)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    work = tmp_path_factory.mktemp("alluvium-ui")
    c = Cluster(str(work))
    try:
        local = work / "local"
        (local / "docs" / "deep" / "nested").mkdir(parents=True)
        (local / "logs").mkdir()
        (local / "docs" / "notes.txt").write_text(TEXT)
        (local / "docs" / "deep" / "nested" / "data.bin").write_bytes(os.urandom(3 * 1024 * 1024))
        (local / "logs" / "app.log").write_text("started\n" * 500)
        c.fs("copyFromLocal", str(local), "/ui")
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="session")
def artifacts():
    d = os.environ.get("ALLUVIUM_ARTIFACTS",
                       os.path.join(os.path.dirname(os.path.abspath(__file__)), "artifacts"))
    os.makedirs(d, exist_ok=True)
    return d


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright
    assert shutil.which(CHROMIUM) or os.path.exists(CHROMIUM), \
        f"{CHROMIUM} is missing: run scripts/setup.sh (Debian package chromium)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = ctx.new_page()
    yield pg
    ctx.close()
