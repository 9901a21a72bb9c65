"""boto3 and awscli against the S3 gateway, used as installed (path-style, --endpoint-url)."""
import hashlib
import os
import subprocess

import boto3
import botocore
import pytest
import requests
from botocore.config import Config

from conftest import ACCESS_KEY, SECRET_KEY


def s3(cluster, key=ACCESS_KEY, secret=SECRET_KEY):
    return boto3.client("s3", endpoint_url=cluster.s3_url, aws_access_key_id=key,
                        aws_secret_access_key=secret, region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}))


def aws(cluster, *args):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY,
               AWS_DEFAULT_REGION="us-east-1")
    out = subprocess.run(["aws", "--endpoint-url", cluster.s3_url, "s3", *args], env=env,
                         capture_output=True, check=True)
    return out.stdout.decode()


def test_boto3_objects_ranges_presign_multipart(cluster):
    c = s3(cluster)
    c.create_bucket(Bucket="boto")
    body = os.urandom(1 << 20)
    put = c.put_object(Bucket="boto", Key="a/b.bin", Body=body, Metadata={"k": "v"})
    assert put["ETag"] == '"%s"' % hashlib.md5(body).hexdigest()
    head = c.head_object(Bucket="boto", Key="a/b.bin")
    assert head["ContentLength"] == len(body) and head["Metadata"] == {"k": "v"}
    got = c.get_object(Bucket="boto", Key="a/b.bin", Range="bytes=100-199")["Body"].read()
    assert got == body[100:200]
    url = c.generate_presigned_url("get_object", Params={"Bucket": "boto", "Key": "a/b.bin"},
                                   ExpiresIn=300)
    assert requests.get(url).content == body
    assert requests.get(url.replace("Signature=", "Signature=0")).status_code == 403
    keys = [o["Key"] for o in c.list_objects_v2(Bucket="boto")["Contents"]]
    assert keys == ["a/b.bin"]
    # 100 MiB through boto3's managed (multipart) upload.
    big = os.urandom(100 << 20)
    c.upload_fileobj(__import__("io").BytesIO(big), "boto", "big.bin")
    head = c.head_object(Bucket="boto", Key="big.bin")
    assert head["ContentLength"] == len(big) and "-" in head["ETag"]
    tail = c.get_object(Bucket="boto", Key="big.bin", Range="bytes=-1000")["Body"].read()
    assert tail == big[-1000:]
    c.delete_objects(Bucket="boto", Delete={"Objects": [{"Key": "a/b.bin"}, {"Key": "big.bin"}]})


def test_wrong_keys_are_rejected(cluster):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3(cluster, secret="wrong").list_buckets()
    assert e.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3(cluster, key="NOSUCHKEY").list_buckets()
    assert e.value.response["Error"]["Code"] == "InvalidAccessKeyId"
    assert requests.get(cluster.s3_url + "/").status_code == 403


def test_awscli_cp_ls_sync_rm(cluster, tmp_path):
    s3(cluster).create_bucket(Bucket="cli")
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "one.txt").write_text("one")
    (src / "sub" / "two.txt").write_text("two")
    aws(cluster, "cp", str(src / "one.txt"), "s3://cli/one.txt")
    assert "one.txt" in aws(cluster, "ls", "s3://cli/")
    aws(cluster, "sync", str(src), "s3://cli/synced")
    listing = aws(cluster, "ls", "--recursive", "s3://cli/synced")
    assert "synced/sub/two.txt" in listing
    out = tmp_path / "out"
    aws(cluster, "sync", "s3://cli/synced", str(out))
    assert (out / "sub" / "two.txt").read_text() == "two"
    aws(cluster, "rm", "--recursive", "s3://cli/")
    assert aws(cluster, "ls", "s3://cli/").strip() == ""
