"""The examples users apply: built-in kinds against the Kubernetes schemas, Alluvium kinds
against the generated CRD schemas; and broken custom resources are rejected by those schemas."""

import copy

import jsonschema
import pytest

from conftest import EXAMPLES, load_file, validate_any, validate_custom

EXAMPLE_DOCS = [
    (f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc)
    for path in sorted(EXAMPLES.glob("*.yaml"))
    for doc in load_file(path)
]


@pytest.mark.parametrize("doc", [d for _, d in EXAMPLE_DOCS], ids=[i for i, _ in EXAMPLE_DOCS])
def test_example_is_valid(doc, schemas):
    validate_any(doc, schemas)


def test_every_kind_has_an_example():
    kinds = {d["kind"] for _, d in EXAMPLE_DOCS}
    assert {"Tier", "Cluster", "Mount", "Job", "Secret"} <= kinds


def example(kind):
    return next(copy.deepcopy(d) for _, d in EXAMPLE_DOCS if d["kind"] == kind)


def set_path(obj, path, value):
    *parents, last = path
    for p in parents:
        obj = obj[p]
    if value is DELETE:
        del obj[last]
    else:
        obj[last] = value


DELETE = object()

BAD = [
    ("Tier", ["spec", "medium"], "RAM"),
    ("Tier", ["spec", "quota"], "1GB"),
    ("Tier", ["spec", "quota"], "lots"),
    ("Tier", ["spec", "hostPath"], "relative/path"),
    ("Tier", ["spec", "highWatermark"], 1.5),
    ("Tier", ["spec", "medium"], DELETE),
    ("Cluster", ["spec", "workers"], DELETE),
    ("Cluster", ["spec", "workers", "tiers"], []),
    ("Cluster", ["spec", "master", "replicas"], 0),
    ("Cluster", ["spec", "master", "journal", "size"], "ten gigs"),
    ("Cluster", ["spec", "workers", "resources", "limits", "memory"], "1GB"),
    ("Cluster", ["spec", "imagePullPolicy"], "Sometimes"),
    ("Mount", ["spec", "cluster"], DELETE),
    ("Mount", ["spec", "path"], "relative"),
    ("Mount", ["spec", "path"], "/"),
    ("Mount", ["spec", "ufs"], "not a uri"),
    ("Mount", ["spec", "options", "syncInterval"], "soon"),
    ("Mount", ["spec", "pvc", "name"], "Not_A_DNS_Name"),
]


@pytest.mark.parametrize("kind,path,value", BAD, ids=[f"{k}.{'.'.join(p)}" for k, p, _ in BAD])
def test_crd_schema_rejects_bad_spec(kind, path, value, schemas):
    doc = example(kind)
    set_path(doc, path, value)
    with pytest.raises(jsonschema.ValidationError):
        validate_custom(doc, schemas)
