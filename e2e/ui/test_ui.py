"""Every page of the web UI in headless Chromium against a running local cluster with data: the
Overview → Browse → directory → file walk shows the file's attributes, blocks and content; the
Mounts page never shows the credentials of an S3 mount; screenshots are saved as artifacts."""
import os
import re

import requests

from conftest import TEXT

SECRET = "moto-Secret/Key+never-shown"


def shot(page, artifacts, name):
    page.screenshot(path=os.path.join(artifacts, name + ".png"), full_page=True)


def test_overview_to_a_file(cluster, page, artifacts):
    page.goto(cluster.master_url + "/")
    assert page.locator("h1").inner_text() == "Overview"
    body = page.locator("main").inner_text()
    assert "MEM" in body and "SSD" in body, body
    assert re.search(r"workers\s+1 live", body, re.IGNORECASE), body
    assert page.locator("main svg").count() >= 3  # usage bars per tier and in total
    shot(page, artifacts, "01-overview")

    page.click("nav >> text=Browse")
    page.wait_for_url("**/browse")
    page.click("table >> a:text-is('ui/')")
    page.wait_for_url("**/browse?path=/ui")
    listing = page.locator("table").inner_text()
    assert "docs/" in listing and "logs/" in listing, listing
    shot(page, artifacts, "02-browse-directory")

    page.click("table >> a:text-is('docs/')")
    page.wait_for_url("**/browse?path=/ui/docs")
    page.click("table >> a:text-is('notes.txt')")
    page.wait_for_url("**/browse?path=/ui/docs/notes.txt")
    assert page.locator("h1").inner_text() == "Browse notes.txt"
    assert page.locator("pre.preview").inner_text() == TEXT
    props = page.locator("dl.props").inner_text()
    assert f"{len(TEXT)} bytes" in props and "-rw-r--r--" in props, props
    blocks = page.locator("table.blocks").inner_text()
    assert "worker" in blocks and ("MEM" in blocks or "SSD" in blocks), blocks
    shot(page, artifacts, "03-browse-file")

    # Breadcrumbs lead back up.
    page.click(".crumbs >> a:text-is('ui')")
    page.wait_for_url("**/browse?path=/ui")


def test_nested_binary_file(cluster, page, artifacts):
    page.goto(cluster.master_url + "/browse?path=/ui/docs/deep/nested/data.bin")
    assert "Binary content" in page.locator("main").inner_text()
    assert page.locator("table.blocks tbody tr").count() == 3  # 3 MiB in 1 MiB blocks
    shot(page, artifacts, "04-browse-binary")


def test_workers_metrics_and_worker_pages(cluster, page, artifacts):
    page.goto(cluster.master_url + "/workers")
    assert "LIVE" in page.locator("table").inner_text()
    shot(page, artifacts, "05-workers")

    # Reads through the worker show up in the sampled metrics.
    for _ in range(3):
        cluster.fs("cat", "/ui/logs/app.log")
    page.goto(cluster.master_url + "/stats")
    assert page.locator("h1").inner_text() == "Metrics"
    assert page.locator(".chart svg").count() >= 6
    assert "Cache hit ratio" in page.locator("main").inner_text()
    shot(page, artifacts, "06-metrics")

    page.goto(cluster.worker_url + "/")
    body = page.locator("main").inner_text()
    assert "Worker status" in page.locator("h1").inner_text()
    assert "MEM" in body and "SSD" in body and "Recent evictions" in body, body
    shot(page, artifacts, "07-worker")


def test_mounts_hide_s3_credentials(cluster, moto, page, artifacts):
    import boto3
    s3 = boto3.client("s3", endpoint_url=moto, aws_access_key_id="AKIAUITEST",
                      aws_secret_access_key=SECRET, region_name="us-east-1")
    s3.create_bucket(Bucket="ui-bucket")
    s3.put_object(Bucket="ui-bucket", Key="lake/hello.txt", Body=b"from s3")
    cluster.fs("mount", "--readonly", "/s3", "s3://ui-bucket/lake", "--option", f"endpoint={moto}",
               "--option", "access_key_id=AKIAUITEST", "--option",
               f"secret_access_key={SECRET}", "--option", "region=us-east-1")
    page.goto(cluster.master_url + "/mounts")
    html = page.content()
    assert "s3://ui-bucket/lake" in html and "read-only" in html
    assert SECRET not in html and "secret_access_key=******" in page.locator("table").inner_text()
    shot(page, artifacts, "08-mounts")
    for path in ("/api/v1/mounts", "/api/v1/master", "/"):
        assert SECRET not in requests.get(cluster.master_url + path, timeout=5).text

    # The mount's files are browsable, their content read from S3 through the worker.
    page.goto(cluster.master_url + "/browse?path=/s3/hello.txt")
    assert page.locator("pre.preview").inner_text() == "from s3"


def test_every_page_has_a_json_twin(cluster):
    for path in ("/api/v1/master", "/api/v1/workers", "/api/v1/mounts", "/api/v1/metrics",
                 "/api/v1/browse?path=/ui"):
        r = requests.get(cluster.master_url + path, timeout=5)
        assert r.status_code == 200 and r.headers["content-type"] == "application/json", path
        r.json()
    r = requests.get(cluster.master_url + "/api/v1/browse?path=/ui/missing", timeout=5)
    assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"
    assert requests.get(cluster.worker_url + "/api/v1/worker", timeout=5).json()["tiers"]
