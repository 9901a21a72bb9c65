"""An S3 under-storage: a real S3 server (moto's server mode) on loopback mounted into Alluvium.
Objects already in the bucket appear in the namespace; files written CACHE_THROUGH land in the
bucket at the same relative path; deletes reach the bucket; unmount keeps the data."""
import os
import socket
import subprocess
import sys
import time

import boto3
import pytest
import requests


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def moto(tmp_path):
    port = free_port()
    server = os.path.join(os.path.dirname(sys.executable), "moto_server")
    log = open(tmp_path / "moto.log", "wb")
    proc = subprocess.Popen([server, "-H", "127.0.0.1", "-p", str(port)], stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while True:
        try:
            requests.get(url, timeout=1)
            break
        except requests.RequestException:
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("moto_server did not start")
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


def test_s3_bucket_as_under_storage(cluster, moto, tmp_path):
    s3 = boto3.client("s3", endpoint_url=moto, aws_access_key_id="testing",
                      aws_secret_access_key="testing", region_name="us-east-1")
    s3.create_bucket(Bucket="lake")
    s3.put_object(Bucket="lake", Key="warehouse/existing/a.txt", Body=b"from s3")

    cluster.fs("mount", "/lake", "s3://lake/warehouse", "--option", f"endpoint={moto}",
               "--option", "access_key_id=testing", "--option", "secret_access_key=testing",
               "--option", "region=us-east-1")
    listing = cluster.fs("ls", "-R", "/lake")
    assert "/lake/existing/a.txt" in listing, listing
    assert cluster.fs("cat", "/lake/existing/a.txt") == "from s3"

    # Written CACHE_THROUGH: durable in the bucket when the command returns.
    data = os.urandom(3 * 1024 * 1024 + 5)
    local = tmp_path / "b.bin"
    local.write_bytes(data)
    env = dict(cluster.env, ALLUVIUM_CLIENT__WRITE_TYPE="CACHE_THROUGH")
    subprocess.run([cluster.bin, "fs", "copyFromLocal", str(local), "/lake/new/b.bin"], env=env,
                   check=True, capture_output=True)
    got = s3.get_object(Bucket="lake", Key="warehouse/new/b.bin")["Body"].read()
    assert got == data

    # Secrets never shown in the mount table.
    mounts = cluster.fs("mount")
    assert "s3://lake/warehouse" in mounts and "secret_access_key=testing" not in mounts

    cluster.fs("rm", "/lake/new/b.bin")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="lake").get("Contents", [])]
    assert "warehouse/new/b.bin" not in keys
    cluster.fs("unmount", "/lake")
    assert s3.get_object(Bucket="lake", Key="warehouse/existing/a.txt")["Body"].read() == b"from s3"
