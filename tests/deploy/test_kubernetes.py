"""deploy/kubernetes.yaml: valid against Kubernetes' own schemas (kubernetes-validate,
strict: no field Kubernetes would ignore), and the numbers that must agree do: the grace
period outlasts rootserve's drain, the probes and the scrape ask the metrics port, and the
container runs arguments rootserve accepts."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.deploy.tools import ROOT, require, rootserve_args

from rootserve.config import setting_info

pytestmark = pytest.mark.timeout(420)  # only a missing kubernetes-validate takes long

MANIFEST = ROOT / "deploy" / "kubernetes.yaml"
_MEMORY = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}  # to MiB


@pytest.fixture(scope="module")
def validator() -> str:
    return require("kubernetes-validate", pip="kubernetes-validate")


def documents() -> dict[str, dict[str, Any]]:
    docs = list(yaml.safe_load_all(MANIFEST.read_text(encoding="utf-8")))
    return {doc["kind"]: doc for doc in docs}


def pod() -> dict[str, Any]:
    spec: dict[str, Any] = documents()["Deployment"]["spec"]["template"]["spec"]
    return spec


def container() -> dict[str, Any]:
    (only,) = pod()["containers"]
    return dict(only)


def settings() -> dict[str, Any]:
    """What rootserve makes of the container's arguments, defaults filled in."""
    given = rootserve_args(container()["args"])
    return {info.name: given.get(info.name, info.default) for info in setting_info()}


def port_named(name: str) -> int:
    (port,) = [p["containerPort"] for p in container()["ports"] if p["name"] == name]
    return int(port)


def test_kubernetes_validate_passes_the_file(validator: str) -> None:
    done = subprocess.run(
        [validator, "--strict", str(MANIFEST)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(" passed for resource ") == len(documents())


def test_kubernetes_validate_bites(validator: str, tmp_path: Path) -> None:
    # A misspelt field, which Kubernetes would drop without a word: strict mode refuses it.
    broken = tmp_path / "broken.yaml"
    text = MANIFEST.read_text(encoding="utf-8")
    broken.write_text(text.replace("readOnlyRootFilesystem:", "readOnlyRootFileSystem:"))
    done = subprocess.run(
        [validator, "--strict", str(broken)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    assert "readOnlyRootFileSystem" in done.stdout + done.stderr


def test_the_container_runs_rootserve_with_arguments_it_accepts() -> None:
    assert container()["command"] == ["rootserve"]
    got = settings()  # fails, naming the flag, on one rootserve does not have
    assert got["app"] == "app:app"
    assert got["host"] == "0.0.0.0"
    assert got["proxy_headers"] is True
    assert got["port"] == port_named("http")


def test_an_argument_rootserve_lacks_fails_the_check() -> None:
    with pytest.raises(AssertionError, match="--timeout-graceful-shutdown"):
        rootserve_args([*container()["args"], "--timeout-graceful-shutdown=30"])


def test_the_grace_period_outlasts_the_drain() -> None:
    got = settings()
    assert got["shutdown_delay"] > 0  # readiness turns 503 while the app still serves
    assert got["timeout_graceful"] > 0  # 0 would wait for ever: no grace period is enough
    assert pod()["terminationGracePeriodSeconds"] > got["shutdown_delay"] + got["timeout_graceful"]


def test_probes_and_scrape_ask_the_metrics_port() -> None:
    metrics = port_named("metrics")
    assert int(settings()["metrics_bind"].rpartition(":")[2]) == metrics
    probes = {kind: container()[kind]["httpGet"] for kind in ("readinessProbe", "livenessProbe")}
    assert probes["readinessProbe"] == {"path": "/readyz", "port": "metrics"}
    assert probes["livenessProbe"] == {"path": "/healthz", "port": "metrics"}
    notes = documents()["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert notes["prometheus.io/scrape"] == "true"
    assert int(notes["prometheus.io/port"]) == metrics
    assert notes["prometheus.io/path"] == "/metrics"


def test_the_service_reaches_the_app_port_of_these_pods() -> None:
    docs = documents()
    labels = docs["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert docs["Deployment"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert docs["Service"]["spec"]["selector"].items() <= labels.items()
    assert [p["targetPort"] for p in docs["Service"]["spec"]["ports"]] == ["http"]


def test_no_service_name_becomes_a_rootserve_setting() -> None:
    # With service links on, a Service called NAME puts NAME_PORT, NAME_SERVICE_HOST, ...
    # in every pod's environment, and rootserve reads ROOTSERVE_* as its settings: a
    # Service named rootserve would set --port to "tcp://10.0.0.1:80".
    envs = {info.env for info in setting_info()}
    clashing = []
    for doc in documents().values():
        if doc["kind"] == "Service":
            prefix = re.sub(r"[^A-Z0-9]", "_", doc["metadata"]["name"].upper()) + "_"
            clashing += [env for env in envs if env.startswith(prefix)]
    if clashing:  # as this file's Service, named rootserve, does
        assert pod().get("enableServiceLinks", True) is False, clashing


def test_the_container_is_locked_down() -> None:
    assert pod()["securityContext"]["runAsNonRoot"] is True
    locked = container()["securityContext"]
    assert locked["runAsNonRoot"] is True
    assert locked["allowPrivilegeEscalation"] is False
    assert locked["readOnlyRootFilesystem"] is True
    assert locked["capabilities"]["drop"] == ["ALL"]
    # The metrics' multiprocess files and tempfile need one writable folder.
    assert "/tmp" in {mount["mountPath"] for mount in container()["volumeMounts"]}


def test_the_user_is_the_images() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    (user,) = re.findall(r"^USER (\d+)", dockerfile, re.MULTILINE)
    assert pod()["securityContext"]["runAsUser"] == int(user)


def test_workers_are_retired_before_the_memory_limit_kills_them() -> None:
    got = settings()
    assert got["limit_worker_memory"] > 0
    memory = re.fullmatch(r"(\d+)(Ki|Mi|Gi)", container()["resources"]["limits"]["memory"])
    assert memory is not None
    limit = int(memory[1]) * _MEMORY[memory[2]]
    # The workers, and the replacement that starts beside one being retired.
    assert (got["workers"] + 1) * got["limit_worker_memory"] < limit


def test_cpu_requested_matches_the_workers() -> None:
    assert int(container()["resources"]["requests"]["cpu"]) == settings()["workers"]
