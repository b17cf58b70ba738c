"""docker-compose.yml cannot run here (no Docker engine). These tests read it, the one Dockerfile and each
process's settings class, and prove every process listens where its health check and the gateway look,
that the images are built the one way, and that ``docker-compose config`` accepts the file."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from clinishare_shared.healthcheck import probe_url, settings_class
from clinishare_shared.routes import SERVICES
from clinishare_shared.settings import ProcessSettings, ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {"RABBITMQ_PASSWORD": "ci-rabbit-x1", "MONGODB_PASSWORD": "ci-mongo-x2",
           "MONGODB_ROOT_PASSWORD": "ci-root-x3", "MONGODB_REPLICA_KEY": "ci-key-x4",
           "WEB_SESSION_KEY": "ci-web-session-secret-x5"}
APPS = {*SERVICES, "gateway", "web"}


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}, enough for this file."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if name in env and (env[name] or op != ":-"):
            return env[name]
        if op == ":?":
            raise KeyError(f"{name}: {arg}")
        return arg or ""

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", one, value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    raw = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return interpolate(raw, SECRETS)


def app_settings(service: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> ProcessSettings:
    """The settings the container's process would load: only the environment compose gives it."""
    for key in list(os.environ):
        monkeypatch.delenv(key)
    for key, value in service.get("environment", {}).items():
        monkeypatch.setenv(key, str(value))
    return settings_class(service["build"]["args"]["APP"])()


def port_of(url: str) -> tuple[str, int]:
    m = re.fullmatch(r"https?://([^:/]+):(\d+)/?.*", url)
    assert m, url
    return m.group(1), int(m.group(2))


def test_every_process_listens_where_the_gateway_and_its_health_check_look(
        compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    services = compose["services"]
    assert APPS <= set(services) and {"mongo", "rabbitmq", "mailpit"} <= set(services)
    listening: dict[str, int] = {}
    jwks: dict[str, str] = {}
    for name in sorted(APPS):
        svc = services[name]
        args = svc["build"]["args"]
        assert svc["build"]["dockerfile"] == "deploy/Dockerfile", name
        assert args["APP"] == f"clinishare_{name}" and args["PACKAGES"].split()[0].endswith(name)
        settings = app_settings(svc, monkeypatch)
        assert settings.host == "0.0.0.0", f"{name} would listen on loopback only inside its container"
        assert settings.port == int(args["PORT"]), f"{name} listens on {settings.port}, EXPOSEs {args['PORT']}"
        # the compose health check is the image's: it reads these same settings
        assert svc["healthcheck"]["test"] == ["CMD", "python", "-m", "clinishare_shared.healthcheck"], name
        assert port_of(probe_url(settings, "/readyz")) == ("127.0.0.1", settings.port)
        if isinstance(settings, ServiceSettings):
            assert settings.missing_servers() == [], f"{name} would refuse to start"
            assert "MONGODB_URL" in svc["environment"] and "@mongo:27017/" in svc["environment"]["MONGODB_URL"]
            assert "replicaSet=rs0" in svc["environment"]["MONGODB_URL"]
            jwks[name] = settings.jwks_url
        listening[name] = settings.port

    for name, url in jwks.items():
        assert port_of(url) == ("identity", listening["identity"]), f"{name} looks for the JWKS elsewhere"

    gateway = app_settings(services["gateway"], monkeypatch)
    for name in SERVICES:
        assert port_of(gateway.upstream(name)) == (name, listening[name]), f"the gateway looks elsewhere for {name}"
    assert gateway.web_url and port_of(gateway.web_url) == ("web", listening["web"])
    web = app_settings(services["web"], monkeypatch)
    assert port_of(web.api_base_url) == ("gateway", listening["gateway"])  # type: ignore[attr-defined]
    for service in SERVICES:
        if service != "identity":
            url = services[service]["environment"].get(f"{service.upper()}_IDENTITY_URL")
            assert url is None or port_of(url) == ("identity", listening["identity"])


def test_the_image_has_every_package_compose_asks_for(compose: dict[str, Any]) -> None:
    build_stage = (ROOT / "deploy" / "Dockerfile").read_text().split("\nFROM ${PYTHON_IMAGE}\n", 1)[0]
    copied = set(re.findall(r"^COPY (\S+)/ /src/", build_stage, re.M))
    for name, svc in compose["services"].items():
        if "build" in svc:
            for package in svc["build"]["args"]["PACKAGES"].split():
                assert (ROOT / package / "pyproject.toml").is_file(), (name, package)
                assert package.split("/")[0] in copied, f"{name}: the image build does not copy {package}"


def test_the_production_lock_has_every_dependency_of_every_image(compose: dict[str, Any]) -> None:
    import tomllib

    locked = set(re.findall(r"^([A-Za-z0-9_.-]+)==", (ROOT / "requirements" / "service.lock").read_text(), re.M))
    locked = {re.sub(r"[-_.]+", "-", n).lower() for n in locked}
    packages = {"shared"} | {p for svc in compose["services"].values() if "build" in svc
                             for p in svc["build"]["args"]["PACKAGES"].split()}
    for package in sorted(packages):
        project = tomllib.loads((ROOT / package / "pyproject.toml").read_text())["project"]
        for requirement in project.get("dependencies", []):
            name = re.sub(r"[-_.]+", "-", re.split(r"[\[<>=!~ ;]", requirement, maxsplit=1)[0]).lower()
            assert name.startswith("clinishare-") or name in locked, f"{package} needs {name}, not in service.lock"


def test_start_order_and_exposure(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["gateway"]["depends_on"] == {s: {"condition": "service_healthy"} for s in SERVICES}
    for name in SERVICES:
        deps = services[name]["depends_on"]
        assert deps["mongo"] == {"condition": "service_healthy"}
        assert deps["topology"] == {"condition": "service_completed_successfully"}, "queues exist before traffic"
    topology = services["topology"]
    assert topology["build"]["args"]["APP"] == "clinishare_shared.topology"
    assert set(topology["build"]["args"]["PACKAGES"].split()) == {f"services/{s}" for s in SERVICES}
    assert topology["depends_on"] == {"rabbitmq": {"condition": "service_healthy"}}
    assert topology["environment"]["AMQP_URL"].startswith("amqp://clinishare:")
    published = {name: svc.get("ports", []) for name, svc in services.items() if svc.get("ports")}
    assert published.pop("gateway") == ["8000:8000"]
    # only the gateway and, on loopback, the mail catcher's UI; never the broker's management port
    assert published == {"mailpit": ["127.0.0.1:8025:8025"]}
    mongo = services["mongo"]
    assert "--replSet" in mongo["command"] and "--keyFile" in mongo["command"]
    assert mongo["environment"]["MONGO_INITDB_ROOT_PASSWORD"] == SECRETS["MONGODB_ROOT_PASSWORD"]


def test_one_image_pattern() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    lines = [ln for ln in dockerfile.splitlines() if ln and not ln.startswith("#")]
    assert sum(ln.startswith("FROM ") for ln in lines) == 2, "multi-stage: build, then runtime"
    image = re.search(r"^ARG PYTHON_IMAGE=python:(\S+)$", dockerfile, re.M)
    assert image and re.fullmatch(r"\d+\.\d+\.\d+-slim-\w+", image.group(1)), "the base image is pinned"
    assert "USER 10001:10001" in lines and "--uid 10001" in dockerfile
    assert "EXPOSE ${PORT}" in lines
    assert 'CMD ["python", "-m", "clinishare_shared.healthcheck"]' in dockerfile and "HEALTHCHECK" in dockerfile
    assert "--require-hashes -r /tmp/service.lock" in dockerfile
    # only the build stage sees sources; the runtime stage takes the virtualenv alone
    runtime = dockerfile.split("\nFROM ${PYTHON_IMAGE}\n", 1)[1]
    assert [ln for ln in runtime.splitlines() if ln.startswith("COPY")] == ["COPY --from=build /opt/venv /opt/venv"]
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {"**/tests", "**/.venv", "**/.git"} <= set(ignored)
    # the production lock carries no test packages and no embedded engines
    lock = (ROOT / "requirements" / "service.lock").read_text().lower()
    for package in ("pytest", "hypothesis", "mongomock", "aiosmtpd", "testcontainers"):
        assert not re.search(rf"^{package}==", lock, re.M), package
    for old in ROOT.glob("services/*/Dockerfile"):
        pytest.fail(f"{old} duplicates deploy/Dockerfile")


def _docker_compose() -> str:
    exe = shutil.which("docker-compose")
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("docker-compose is missing in CI: .ci/run installs Debian's docker-compose")
        pytest.skip("Debian's docker-compose is not installed (.ci/run installs it)")
    return exe


def test_compose_file_is_valid() -> None:
    env = {**os.environ, **SECRETS}
    out = subprocess.run([_docker_compose(), "-f", str(ROOT / "docker-compose.yml"), "config"],
                         capture_output=True, text=True, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert set(yaml.safe_load(out.stdout)["services"]) >= APPS | {"mongo", "rabbitmq", "mailpit"}


@pytest.mark.parametrize("secret", sorted(SECRETS))
def test_compose_refuses_to_start_without_each_secret(secret: str) -> None:
    env = {**{k: v for k, v in os.environ.items() if k not in SECRETS},
           **{k: v for k, v in SECRETS.items() if k != secret}}
    result = subprocess.run([_docker_compose(), "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
                            capture_output=True, text=True, env=env, cwd=ROOT)
    assert result.returncode != 0
    assert secret in result.stderr
