"""Shared helpers: repository paths, YAML loading, and validation against the Kubernetes
OpenAPI schemas (kubernetes-validate, offline) or the generated CRD schemas (jsonschema)."""

from __future__ import annotations

import pathlib
from typing import Any, Iterator

import jsonschema
import kubernetes_validate
import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "alluvium"
CRD_DIR = REPO / "crds" / "generated"
EXAMPLES = REPO / "examples"
GOLDEN = REPO / "operator" / "tests" / "golden"
# The oldest Kubernetes the operator supports (k8s-openapi feature v1_33).
KUBE_VERSION = "1.33.0"
CRD_GROUP = "alluvium.io"


def load_docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def load_file(path: pathlib.Path) -> list[dict[str, Any]]:
    return load_docs(path.read_text())


def crd_schemas() -> dict[str, dict[str, Any]]:
    """Kind → openAPIV3Schema of every generated CRD."""
    out = {}
    for f in sorted(CRD_DIR.glob("*.alluvium.io.yaml")):
        (crd,) = load_file(f)
        version = crd["spec"]["versions"][0]
        out[crd["spec"]["names"]["kind"]] = version["schema"]["openAPIV3Schema"]
    return out


def validate_builtin(obj: dict[str, Any]) -> None:
    """Raises kubernetes_validate.ValidationError for an invalid built-in object (strict:
    unknown fields are errors too)."""
    kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


def validate_custom(obj: dict[str, Any], schemas: dict[str, dict[str, Any]]) -> None:
    """Raises jsonschema.ValidationError when a custom resource breaks its CRD schema."""
    assert obj["apiVersion"] == f"{CRD_GROUP}/v1alpha1", obj["apiVersion"]
    schema = schemas[obj["kind"]]
    jsonschema.Draft7Validator(schema).validate(obj)


def validate_any(obj: dict[str, Any], schemas: dict[str, dict[str, Any]]) -> None:
    if obj.get("apiVersion", "").startswith(CRD_GROUP + "/"):
        validate_custom(obj, schemas)
    else:
        validate_builtin(obj)


def iter_golden() -> Iterator[pathlib.Path]:
    yield from sorted(GOLDEN.rglob("*.yaml"))


@pytest.fixture(scope="session")
def schemas() -> dict[str, dict[str, Any]]:
    return crd_schemas()
