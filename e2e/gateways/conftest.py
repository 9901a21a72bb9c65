"""A real `alluvium local` cluster (master, worker and both gateways in one process) on free
loopback ports, shared by every gateway test. ALLUVIUM_BIN names the binary (scripts/test.sh sets
it to the debug build)."""
import getpass
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

import pytest
import requests

ACCESS_KEY = "AKIAALLUVIUMTEST"
SECRET_KEY = "alluvium/test+secret"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, data_dir):
        self.bin = os.environ.get("ALLUVIUM_BIN", "alluvium")
        self.user = getpass.getuser()
        self.ports = {k: free_port() for k in
                      ("MASTER__RPC_PORT", "MASTER__WEB_PORT", "WORKER__RPC_PORT",
                       "WORKER__WEB_PORT", "PROXY__S3_PORT", "PROXY__WEBHDFS_PORT")}
        self.env = dict(os.environ)
        # Credentials are a list of tables, which only a TOML file can express.
        config = os.path.join(data_dir, "alluvium.toml")
        with open(config, "w") as f:
            f.write(f'[[proxy.s3_credentials]]\naccess_key_id = "{ACCESS_KEY}"\n'
                    f'secret_access_key = "{SECRET_KEY}"\nuser = "{self.user}"\n')
        self.env["ALLUVIUM_CONFIG"] = config
        for k, v in self.ports.items():
            self.env["ALLUVIUM_" + k] = str(v)
        self.env["ALLUVIUM_MASTER"] = f"127.0.0.1:{self.ports['MASTER__RPC_PORT']}"
        self.env["ALLUVIUM_PROXY__BIND_HOST"] = "127.0.0.1"
        self.data_dir = data_dir
        self.log = open(os.path.join(data_dir, "local.log"), "wb")
        self.proc = subprocess.Popen(
            [self.bin, "local", "--data-dir", os.path.join(data_dir, "data"), "--mem", "512MiB"],
            env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        self.s3_url = f"http://127.0.0.1:{self.ports['PROXY__S3_PORT']}"
        self.webhdfs_url = f"http://127.0.0.1:{self.ports['PROXY__WEBHDFS_PORT']}"
        deadline = time.time() + 60
        while True:
            try:
                if requests.get(self.webhdfs_url + "/healthz", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("alluvium local did not start; see " + self.log.name)
            time.sleep(0.2)

    def fs(self, *args):
        """Runs `alluvium fs ...` against the cluster and returns stdout."""
        out = subprocess.run([self.bin, "fs", *args], env=self.env, capture_output=True, check=True)
        return out.stdout.decode()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        # `alluvium local` keeps its MEM tier in /dev/shm across restarts; this cluster is gone
        # for good, so its tier goes too (else every run leaves one behind).
        with open(self.log.name, errors="replace") as f:
            for line in f:
                m = re.search(r"tier MEM .* in (/dev/shm/alluvium-local-[0-9a-f]+)", line)
                if m:
                    shutil.rmtree(m.group(1), ignore_errors=True)


@pytest.fixture(scope="session")
def cluster():
    with tempfile.TemporaryDirectory(prefix="alluvium-gw-") as d:
        c = Cluster(d)
        try:
            yield c
        finally:
            c.stop()
