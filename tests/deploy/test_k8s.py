"""deploy/k8s: every manifest of the base and of the production overlay is valid against the Kubernetes
schemas (kubernetes-validate, strict); the operators' resources (MongoDBCommunity, RabbitmqCluster,
ServiceMonitor), whose CRD schemas that package does not ship, are checked structurally here. Images,
ports, probes and environment are checked against each process's own settings class, and the network
policies against what each service may reach. The overlay is rendered by deploy/kustomize.py."""

from __future__ import annotations

import base64
import importlib.util
import os
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from clinishare_shared.healthcheck import settings_class
from clinishare_shared.routes import SERVICES
from clinishare_shared.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES = "1.32.0"
APPS = [*SERVICES, "gateway", "web"]
FERNET_KEY = base64.urlsafe_b64encode(b"k" * 32).decode()  # the shape WEB_SESSION_KEY must have
CRDS = {"MongoDBCommunity", "RabbitmqCluster", "ServiceMonitor"}

_spec = importlib.util.spec_from_file_location("clinishare_kustomize", ROOT / "deploy" / "kustomize.py")
kustomize = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(kustomize)  # type: ignore[union-attr]


@pytest.fixture(scope="module", params=["base", "overlays/production"])
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, kustomize.render(K8S / request.param)


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [doc] = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def test_every_manifest_is_valid(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    checked = 0
    for doc in docs:
        if doc["kind"] in CRDS:
            with pytest.raises(kubernetes_validate.SchemaNotFoundError):
                kubernetes_validate.validate(doc, KUBERNETES, strict=True)
            continue
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)
        checked += 1
    assert checked >= 30
    assert not [d for d in docs if d["kind"] == "StatefulSet"], "MongoDB and RabbitMQ come from their operators"
    assert all(d["metadata"].get("namespace") == "clinishare" for d in docs)


def test_a_broken_manifest_is_caught() -> None:
    broken = {**find(kustomize.render(K8S / "base"), "Deployment", "charts")}
    broken["spec"] = {**broken["spec"], "replicas": "two"}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)


def test_operator_resources_structurally(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    mongo = find(docs, "MongoDBCommunity", "clinishare-mongodb")
    assert mongo["apiVersion"] == "mongodbcommunity.mongodb.com/v1"
    spec = mongo["spec"]
    assert spec["type"] == "ReplicaSet" and spec["members"] >= 3 and re.fullmatch(r"\d+\.\d+\.\d+", spec["version"])
    assert spec["security"]["authentication"]["modes"] == ["SCRAM"]
    users = {u["name"]: u for u in spec["users"]}
    assert set(users) == set(SERVICES)
    for name, user in users.items():
        assert user["roles"] == [{"name": "readWrite", "db": f"clinishare_{name}"}], "only its own database"
        ref = user["passwordSecretRef"]
        assert ref["key"] in find(docs, "Secret", ref["name"])["stringData"]
        assert user["scramCredentialsSecretName"]
    rabbit = find(docs, "RabbitmqCluster", "clinishare-rabbitmq")
    assert rabbit["apiVersion"] == "rabbitmq.com/v1beta1" and rabbit["spec"]["replicas"] >= 3
    assert rabbit["spec"]["service"]["type"] == "ClusterIP"
    monitor = find(docs, "ServiceMonitor", "clinishare")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s"}]
    selector = monitor["spec"]["selector"]

    def selected(labels: dict[str, str]) -> bool:
        return selector["matchLabels"].items() <= labels.items() and all(
            labels.get(e["key"]) in e["values"] for e in selector.get("matchExpressions", []) if e["operator"] == "In")

    scraped = {d["metadata"]["name"] for d in docs if d["kind"] == "Service"
               and selected(d["metadata"]["labels"]) and d["spec"]["type"] == "ClusterIP"}
    assert scraped == {*SERVICES, "gateway"}, "every process with /metrics (the console has none)"


def _environment(container: dict[str, Any], docs: list[dict[str, Any]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for var in container["env"]:
        if "value" in var:
            env[var["name"]] = var["value"]
            continue
        ref = var["valueFrom"]
        if "secretKeyRef" in ref:
            secret = find(docs, "Secret", ref["secretKeyRef"]["name"])
            value = secret["stringData"][ref["secretKeyRef"]["key"]]
            # the committed secrets are placeholders (which settings refuse, on purpose): stand in real ones
            env[var["name"]] = FERNET_KEY if value == "changeme" else value.replace("changeme", "k8s-test-secret")
        else:
            config = find(docs, "ConfigMap", ref["configMapKeyRef"]["name"])
            assert ref["configMapKeyRef"]["key"] in config["data"]
            env[var["name"]] = config["data"][ref["configMapKeyRef"]["key"]]
    return env


def test_deployments_agree_with_each_settings_class(rendered: tuple[str, list[dict[str, Any]]],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    variant, docs = rendered
    ports: dict[str, int] = {}
    loaded: dict[str, Any] = {}
    for app in APPS:
        deployment = find(docs, "Deployment", app)
        pod = deployment["spec"]["template"]["spec"]
        [container] = pod["containers"]
        repo, _, tag = container["image"].rpartition(":")
        assert repo.endswith(f"clinishare/{app}") and re.fullmatch(r"\d+\.\d+\.\d+", tag), container["image"]
        assert deployment["spec"]["replicas"] == (2 if variant == "base" else 3)
        for key in list(os.environ):
            monkeypatch.delenv(key)
        for key, value in _environment(container, docs).items():
            monkeypatch.setenv(key, value)
        settings = settings_class(f"clinishare_{app}")()  # unknown <PREFIX>_* variables would raise here
        loaded[app] = settings
        [port] = container["ports"]
        assert (settings.host, settings.port) == ("0.0.0.0", port["containerPort"]), app
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
        assert container["resources"]["requests"] and container["resources"]["limits"]
        assert container["securityContext"]["runAsUser"] == 10001 and pod["securityContext"]["runAsNonRoot"]
        if isinstance(settings, ServiceSettings):
            assert settings.missing_servers() == [], f"{app} would refuse to start"
        service = find(docs, "Service", app)
        assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
        assert service["spec"]["ports"] == [{"name": "http", "port": port["containerPort"], "targetPort": "http",
                                             "protocol": "TCP"}]
        assert find(docs, "PodDisruptionBudget", app)["spec"]["minAvailable"] == 1
        hpa = find(docs, "HorizontalPodAutoscaler", app)["spec"]
        assert hpa["scaleTargetRef"]["name"] == app and hpa["minReplicas"] >= 2
        ports[app] = port["containerPort"]
    for app in SERVICES:
        assert loaded[app].jwks_url == f"http://identity:{ports['identity']}/.well-known/jwks.json"
        assert loaded["gateway"].upstream(app) == f"http://{app}:{ports[app]}"
    assert loaded["gateway"].web_url == f"http://web:{ports['web']}"
    assert loaded["web"].api_base_url == f"http://gateway:{ports['gateway']}"
    identity = find(docs, "Deployment", "identity")["spec"]["template"]["spec"]
    key_file = loaded["identity"].signing_key_file
    [mount] = [m for m in identity["containers"][0]["volumeMounts"] if m["name"] == "signing-key"]
    assert key_file is not None and str(key_file.parent) == mount["mountPath"]
    [volume] = [v for v in identity["volumes"] if v["name"] == "signing-key"]
    assert volume["secret"]["secretName"] == "clinishare-signing-key"
    job = find(docs, "Job", "clinishare-topology")["spec"]["template"]["spec"]["containers"][0]
    assert job["image"].rpartition(":")[0].endswith("clinishare/topology")
    assert {e["name"] for e in job["env"]} == {"AMQP_URL", "RABBITMQ_MANAGEMENT_URL"}


def test_only_the_gateway_is_exposed_and_each_service_reaches_only_its_own(
        rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    exposed = [d["metadata"]["name"] for d in docs if d["kind"] == "Service" and d["spec"]["type"] != "ClusterIP"]
    assert exposed == ["gateway-public"]
    assert find(docs, "Service", "gateway-public")["spec"]["selector"] == {"app.kubernetes.io/name": "gateway"}
    deny = find(docs, "NetworkPolicy", "default-deny")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}

    def targets(rules: list[dict[str, Any]]) -> set[str]:
        out = set()
        for rule in rules:
            for peer in rule.get("to", rule.get("from", [{"anywhere": True}])):
                if "ipBlock" in peer:
                    out.add("internet")
                elif "podSelector" in peer and "namespaceSelector" not in peer:
                    out.add(peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"])
                elif peer.get("podSelector", {}).get("matchLabels", {}).get("k8s-app") == "kube-dns":
                    out.add("dns")
                elif "namespaceSelector" in peer:
                    out.add("namespace:" + peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"])
                else:
                    out.add("anywhere")
        return out

    for app in SERVICES:
        spec = find(docs, "NetworkPolicy", app)["spec"]
        expected = {"dns", "mongodb", "rabbitmq"} | ({"identity"} if app != "identity" else set()) \
            | ({"internet"} if app == "notify" else set())
        assert targets(spec["egress"]) == expected, app
        callers = {"gateway", "namespace:monitoring"} | ({s for s in SERVICES if s != "identity"}
                                                         if app == "identity" else set())
        assert targets(spec["ingress"]) == callers, app
    gateway = find(docs, "NetworkPolicy", "gateway")["spec"]
    assert targets(gateway["ingress"]) == {"anywhere"}
    assert targets(gateway["egress"]) == {"dns", "web", *SERVICES}
    web = find(docs, "NetworkPolicy", "web")["spec"]
    assert targets(web["ingress"]) == {"gateway"} and targets(web["egress"]) == {"dns", "gateway"}
    notify_internet = [r for r in find(docs, "NetworkPolicy", "notify")["spec"]["egress"]
                       if any("ipBlock" in p for p in r["to"])]
    assert {p["port"] for r in notify_internet for p in r["ports"]} == {587, 465}, "SMTP only"


def test_secrets_for_database_broker_smtp_and_signing_key() -> None:
    docs = kustomize.render(K8S / "base")
    names = {d["metadata"]["name"] for d in docs if d["kind"] == "Secret"}
    assert names == {*(f"clinishare-db-{s}" for s in SERVICES), "clinishare-broker", "clinishare-smtp",
                     "clinishare-signing-key", "clinishare-web", "clinishare-internal"}
    # identity's snapshot key reaches identity and the services that catch their projection up from it
    for doc in docs:
        if doc["kind"] == "Deployment" and doc["metadata"]["name"] in ("identity", "charts", "documents", "forms"):
            env = {v["name"]: v for v in kustomize._containers(doc)[0].get("env", [])}
            assert env["INTERNAL_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "clinishare-internal"
    # nothing secret is written inline in a workload: every URL with a password comes from a Secret
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            for container in kustomize._containers(doc):
                for var in container.get("env", []):
                    assert "@" not in var.get("value", ""), (doc["metadata"]["name"], var["name"])


def test_the_production_overlay_patches_without_losing_the_base() -> None:
    base = {(d["kind"], d["metadata"]["name"]): d for d in kustomize.render(K8S / "base")}
    prod = {(d["kind"], d["metadata"]["name"]): d for d in kustomize.render(K8S / "overlays" / "production")}
    assert set(base) == set(prod)
    for app in APPS:
        b = base[("Deployment", app)]["spec"]["template"]["spec"]["containers"][0]
        p = prod[("Deployment", app)]["spec"]["template"]["spec"]["containers"][0]
        assert p["env"] == b["env"] and p["readinessProbe"] == b["readinessProbe"], "merged by name, not replaced"
        assert p["resources"]["limits"]["memory"] == "1Gi"
        assert p["image"].startswith("registry.example.org/clinishare/")
        assert prod[("HorizontalPodAutoscaler", app)]["spec"]["minReplicas"] == 3
    assert prod[("ConfigMap", "clinishare-observability")]["data"]["otlp-endpoint"].startswith("http://")


def test_the_renderer_refuses_what_it_does_not_know(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\nconfigMapGenerator: []\n")
    with pytest.raises(ValueError, match="configMapGenerator"):
        kustomize.render(tmp_path)
