"""pyspark (PyPI, with its bundled Hadoop WebHdfsFileSystem) reading CSV and Parquet from the
WebHDFS gateway and writing results back with df.write."""
import hdfs


def test_spark_reads_and_writes_through_webhdfs(cluster, tmp_path):
    from pyspark.sql import SparkSession, functions as F

    client = hdfs.InsecureClient(cluster.webhdfs_url, user=cluster.user)
    rows = "\n".join(f"{i % 7},{i}" for i in range(10000))
    client.write("/spark/in/data.csv", data=("k,v\n" + rows + "\n").encode(), overwrite=True)
    base = "webhdfs://127.0.0.1:%d" % cluster.ports["PROXY__WEBHDFS_PORT"]
    spark = (SparkSession.builder.master("local[2]").appName("alluvium-webhdfs")
             .config("spark.driver.host", "127.0.0.1")
             .config("spark.driver.bindAddress", "127.0.0.1")
             .config("spark.ui.enabled", "false")
             .getOrCreate())
    try:
        df = spark.read.option("header", True).option("inferSchema", True).csv(base + "/spark/in/data.csv")
        df.write.mode("overwrite").parquet(base + "/spark/parquet")
        pq = spark.read.parquet(base + "/spark/parquet")
        agg = pq.groupBy("k").agg(F.sum("v").alias("total")).orderBy("k")
        agg.coalesce(1).write.mode("overwrite").option("header", True).csv(base + "/spark/out")
        expected = {k: sum(i for i in range(10000) if i % 7 == k) for k in range(7)}
        got = {r["k"]: r["total"] for r in agg.collect()}
        assert got == expected
    finally:
        spark.stop()
    listing = cluster.fs("ls", "/spark/out")
    assert "_SUCCESS" in listing and ".csv" in listing
