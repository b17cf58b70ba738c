"""One way to build a service (docs/ARCHITECTURE.md): every service has the same file set, only its store
talks to MongoDB, and no service imports another one (they meet only through events and the gateway)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICES = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "pyproject.toml").is_file())
COMMON = ["app.py", "settings.py", "service.py", "store.py", "events.py", "api/deps.py", "domain/__init__.py"]
SHARING = {"charts", "documents", "forms"}  # the services whose rules decide who reads what
MONGO_MODULES = ("pymongo", "motor", "bson", "gridfs")
TYPED = {"audit", "charts", "documents", "forms", "identity", "notify"}  # services whose api/ sees only typed stored documents and XRead models
UNTYPED = {"dict[str, Any]", "Dict[str, Any]", "typing.Dict[str, Any]"}


def package(service: str) -> Path:
    return ROOT / "services" / service / f"clinishare_{service}"


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_the_services_are_found() -> None:
    assert SERVICES == ["audit", "charts", "documents", "forms", "identity", "notify"]


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_the_common_file_set(service: str) -> None:
    missing = [f for f in COMMON if not (package(service) / f).is_file()]
    if service in SHARING and not (package(service) / "domain" / "access.py").is_file():
        missing.append("domain/access.py")
    assert not missing, f"{service} lacks {missing}"
    events = ast.parse((package(service) / "events.py").read_text())
    assert "consumed" in {n.name for n in events.body if isinstance(n, ast.FunctionDef)}, \
        f"{service}/events.py must define consumed(): event type -> handler"


@pytest.mark.parametrize("service", SERVICES)
def test_no_service_imports_another(service: str) -> None:
    others = {f"clinishare_{s}" for s in SERVICES} - {f"clinishare_{service}"}
    for path in (ROOT / "services" / service).rglob("*.py"):
        bad = {m for m in imports(path) if m.split(".")[0] in others}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


@pytest.mark.parametrize("service", SERVICES)
def test_only_the_store_talks_to_mongodb(service: str) -> None:
    for path in package(service).rglob("*.py"):
        if path.name == "store.py":
            continue
        bad = {m for m in imports(path) if m.split(".")[0] in MONGO_MODULES}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}: MongoDB code belongs in store.py"


@pytest.mark.parametrize("service", SERVICES)
def test_the_domain_is_pure(service: str) -> None:
    # nothing under domain/ touches the database, the bus, the network or the HTTP layer
    for path in (package(service) / "domain").rglob("*.py"):
        bad = {m for m in imports(path)
               if m.split(".")[0] in (*MONGO_MODULES, "httpx", "aio_pika", "fastapi", "aiosmtplib")
               or m in ("clinishare_shared.mongo", "clinishare_shared.outbox", "clinishare_shared.bus",
                        "clinishare_shared.projection", "clinishare_shared.directory")
               or m.startswith((f"clinishare_{service}.store", f"clinishare_{service}.api"))}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}: the domain does no I/O"


def untyped_documents(path: Path) -> list[str]:
    """Where a module names ``dict[str, Any]`` (in an annotation, an ``Annotated`` alias, anywhere)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [f"{path.name}:{node.lineno}" for node in ast.walk(tree)
            if (isinstance(node, ast.Subscript) and ast.unparse(node) in UNTYPED)
            or (isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.strip() in UNTYPED)]


@pytest.mark.parametrize("service", sorted(TYPED))
def test_api_of_typed_services_sees_no_untyped_documents(service: str) -> None:
    """Routes get typed stored documents from the store and answer ``XRead.from_doc(...)``."""
    found = [hit for path in sorted((package(service) / "api").rglob("*.py")) for hit in untyped_documents(path)]
    assert not found, f"{service}/api uses dict[str, Any] at {found}: type the stored document instead"


def test_untyped_documents_are_found(tmp_path: Path) -> None:
    module = tmp_path / "routes.py"
    module.write_text("from typing import Annotated, Any\nDoc = Annotated[dict[str, Any], 1]\n"
                      "def f(x: 'dict[str, Any]') -> int: ...\ndef g(x: dict[str, int]) -> None: ...\n")
    assert untyped_documents(module) == ["routes.py:2", "routes.py:3"]


def test_a_service_missing_a_file_or_importing_another_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks above really catch what they are for."""
    fake = tmp_path / "services" / "demo" / "clinishare_demo"
    (fake / "api").mkdir(parents=True)
    (fake / "domain").mkdir()
    (tmp_path / "services" / "demo" / "pyproject.toml").write_text("")
    for f in COMMON:
        (fake / f).write_text("def consumed():\n    return {}\n" if f == "events.py" else "")
    (fake / "api" / "x.py").write_text("from clinishare_charts.store import ChartStore\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "SERVICES", ["charts", "demo"])
    with pytest.raises(AssertionError, match="imports"):
        test_no_service_imports_another("demo")
    (fake / "service.py").unlink()
    with pytest.raises(AssertionError, match="lacks"):
        test_every_service_has_the_common_file_set("demo")


def test_the_readme_names_only_real_service_settings() -> None:
    """Every ``<SERVICE>_...`` variable the README names is a field of that service's settings (one
    deliberate misspelling shows what an unknown one does)."""
    import importlib
    import re

    real = set()
    for service in SERVICES:
        settings = importlib.import_module(f"clinishare_{service}.settings")
        for cls in vars(settings).values():
            prefix = getattr(cls, "model_config", {}).get("env_prefix", "") if isinstance(cls, type) else ""
            if prefix.lower() == f"{service}_":
                real |= {f"{prefix}{name}".upper() for name in cls.model_fields}
    named = set(re.findall(r"\b((?:IDENTITY|CHARTS|DOCUMENTS|FORMS|NOTIFY)_[A-Z0-9_]+)\b",
                           (ROOT / "README.md").read_text()))
    assert named - real == {"CHARTS_PROT"}
