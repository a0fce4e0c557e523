"""The cluster manifests in deploy/k8s/, validated against Kubernetes' own OpenAPI schemas (strict:
an unknown or misspelt field fails) by `kubernetes-validate`, and held to the servers they run:
the probes are the health endpoints the servers answer, the ports the ones they listen on, and
every Service, autoscaler and disruption budget points at a Deployment that exists."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from .pipeline import REPO

K8S = REPO / "deploy" / "k8s"
VERSIONS = ["1.30.0", "1.37.0"]  # the oldest release with every field used here (gRPC probes GA in 1.27), the newest


def _documents() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, doc) for path in sorted(K8S.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]


def _kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in _documents() if doc["kind"] == kind}


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_is_valid_kubernetes(version: str) -> None:
    documents = _documents()
    assert {doc["kind"] for _, doc in documents} >= {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    }
    for _path, doc in documents:
        kubernetes_validate.validate(doc, version, strict=True)  # raises ValidationError on a bad field


def test_the_validator_rejects_a_misspelt_field() -> None:
    deployment = copy.deepcopy(_kind("Deployment")["cnnpipe-http"])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {"path": "/readyz"}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


def _container(name: str) -> dict[str, Any]:
    (container,) = _kind("Deployment")[name]["spec"]["template"]["spec"]["containers"]
    return container


def test_http_probes_are_the_services_health_endpoints_on_its_port() -> None:
    container = _container("cnnpipe-http")
    (port,) = container["ports"]
    assert port["containerPort"] == 3000  # `bentoml serve`'s default, what the Bento image runs
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] == port["name"]
    env = {e["name"]: e for e in container["env"]}
    assert env["CNNPIPE_REPLICA_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_grpc_probes_use_the_health_service_on_the_port_the_server_listens_on() -> None:
    container = _container("cnnpipe-grpc")
    command = container["command"]
    assert command[:4] == ["python", "-m", "cnnpipe.cli", "serve-grpc"]
    listen = int(command[command.index("--port") + 1])
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert [p["containerPort"] for p in container["ports"]] == [listen]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == listen
    grace = float(command[command.index("--grace") + 1])
    pod = _kind("Deployment")["cnnpipe-grpc"]["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > grace  # in-flight calls finish before SIGKILL


def test_services_autoscalers_and_budgets_point_at_the_deployments() -> None:
    deployments = _kind("Deployment")
    labels = {name: d["spec"]["template"]["metadata"]["labels"] for name, d in deployments.items()}
    for name, service in _kind("Service").items():
        selector = service["spec"]["selector"]
        matched = [d for d, have in labels.items() if selector.items() <= have.items()]
        assert len(matched) == 1, f"Service {name} selects {matched}"
        ports = {p["name"] for p in _container(matched[0])["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports
    for name, hpa in _kind("HorizontalPodAutoscaler").items():
        target = hpa["spec"]["scaleTargetRef"]
        assert target["kind"] == "Deployment" and target["name"] in deployments, name
        assert hpa["spec"]["minReplicas"] >= 2  # one pod down (a node drained) still serves
    for name, budget in _kind("PodDisruptionBudget").items():
        selector = budget["spec"]["selector"]["matchLabels"]
        assert any(selector.items() <= have.items() for have in labels.values()), name
    for name in deployments:
        requests = _container(name)["resources"]["requests"]
        assert {"cpu", "memory"} <= requests.keys(), name  # the autoscaler's utilisation needs a request
