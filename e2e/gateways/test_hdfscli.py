"""HdfsCLI (the `hdfs` package) against the WebHDFS gateway, used as installed."""
import hdfs


def test_upload_download_list_rename_status_delete(cluster, tmp_path):
    client = hdfs.InsecureClient(cluster.webhdfs_url, user=cluster.user)
    src = tmp_path / "in.txt"
    src.write_bytes(b"hello webhdfs\n" * 10000)
    client.makedirs("/hdfscli")
    client.upload("/hdfscli/in.txt", str(src))
    assert client.list("/hdfscli") == ["in.txt"]
    st = client.status("/hdfscli/in.txt")
    assert st["length"] == src.stat().st_size and st["type"] == "FILE"
    with client.read("/hdfscli/in.txt", offset=6, length=8) as r:
        assert r.read() == b"webhdfs\n"
    dst = tmp_path / "out.txt"
    client.download("/hdfscli/in.txt", str(dst))
    assert dst.read_bytes() == src.read_bytes()
    client.rename("/hdfscli/in.txt", "/hdfscli/moved.txt")
    assert client.status("/hdfscli/in.txt", strict=False) is None
    assert client.content("/hdfscli")["fileCount"] == 1
    client.write("/hdfscli/moved.txt", data=b"new", overwrite=True)
    with client.read("/hdfscli/moved.txt") as r:
        assert r.read() == b"new"
    assert client.delete("/hdfscli", recursive=True)
    assert client.status("/hdfscli", strict=False) is None
    assert "moved.txt" not in cluster.fs("ls", "/")


def test_errors_are_remote_exceptions(cluster):
    client = hdfs.InsecureClient(cluster.webhdfs_url, user=cluster.user)
    client.write("/hdfscli-err.txt", data=b"x", overwrite=True)
    try:
        client.write("/hdfscli-err.txt", data=b"y", overwrite=False)
        raise AssertionError("overwrite=False must fail")
    except hdfs.HdfsError as e:
        assert "exists" in str(e)
    try:
        client.write("/hdfscli-err.txt", data=b"z", append=True)
        raise AssertionError("APPEND must fail")
    except hdfs.HdfsError as e:
        assert "APPEND" in str(e)
    with client.read("/hdfscli-err.txt") as r:
        assert r.read() == b"x"
