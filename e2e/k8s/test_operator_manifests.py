"""Every object the operator builds for the examples (the golden files written by
`cargo test -p alluvium-operator --test golden`) is valid against the Kubernetes OpenAPI
schemas."""

import pytest

from conftest import GOLDEN, iter_golden, load_file, validate_builtin

GOLDEN_FILES = list(iter_golden())


def test_golden_files_exist():
    # A cluster's seven objects for each of the two example clusters, and the mount's three.
    assert len(GOLDEN_FILES) >= 15, f"too few golden files under {GOLDEN}"


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda p: str(p.relative_to(GOLDEN)))
def test_built_object_is_valid_kubernetes(path):
    (obj,) = load_file(path)
    validate_builtin(obj)


def test_worker_pods_size_memory_for_the_mem_tier():
    (ds,) = load_file(GOLDEN / "demo" / "daemonset-worker.yaml")
    (container,) = ds["spec"]["template"]["spec"]["containers"]
    # MEM tier 1Gi + worker process limit 512Mi.
    assert container["resources"]["limits"]["memory"] == "1536Mi"
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/dev/shm/alluvium" in mounts


def test_validator_is_not_vacuous():
    # A typo'd field and a wrong type must fail, or the tests above prove nothing.
    import kubernetes_validate

    (sts,) = load_file(GOLDEN / "demo" / "statefulset-master.yaml")
    sts["spec"]["replcas"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_builtin(sts)
    (svc,) = load_file(GOLDEN / "demo" / "service-master.yaml")
    svc["spec"]["ports"][0]["port"] = "rpc"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_builtin(svc)
