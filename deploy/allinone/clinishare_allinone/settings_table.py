"""The settings table of README.md, generated from the settings classes so it cannot drift:
``python -m clinishare_allinone.settings_table`` prints it; ``--write`` puts it into README.md between
its markers; tests/deploy/test_readme_settings.py fails when README.md differs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from clinishare_shared.settings import ProcessSettings, ServiceSettings

BEGIN, END = "<!-- settings-table:begin (generated: make settings-table) -->", "<!-- settings-table:end -->"
SYSTEM_WIDE = {"mongodb_url": "MONGODB_URL", "amqp_url": "AMQP_URL", "jwks_url": "JWKS_URL",
               "event_exchange": "EVENT_EXCHANGE", "events_stream": "EVENTS_STREAM",
               "events_stream_max_age_days": "EVENTS_STREAM_MAX_AGE_DAYS",
               "events_stream_max_bytes": "EVENTS_STREAM_MAX_BYTES", "embedded_engines": "EMBEDDED_ENGINES",
               "internal_api_key": "INTERNAL_API_KEY"}


def classes() -> list[tuple[str, type[ProcessSettings]]]:
    from clinishare_allinone.system import SystemSettings
    from clinishare_audit.settings import AuditSettings
    from clinishare_charts.settings import ChartsSettings
    from clinishare_documents.settings import DocumentsSettings
    from clinishare_forms.settings import FormsSettings
    from clinishare_gateway.settings import GatewaySettings
    from clinishare_identity.settings import IdentitySettings
    from clinishare_notify.settings import NotifySettings

    found: list[tuple[str, type[ProcessSettings]]] = [
        ("identity", IdentitySettings), ("charts", ChartsSettings), ("documents", DocumentsSettings),
        ("forms", FormsSettings), ("notify", NotifySettings), ("audit", AuditSettings),
        ("gateway", GatewaySettings)]
    try:
        from clinishare_web.settings import WebSettings

        found.append(("web", WebSettings))
    except ImportError:  # the console is optional in a service image
        pass
    found.append(("all-in-one (`make run`)", SystemSettings))
    return found


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return "(computed)"
    value = field.default
    if value is PydanticUndefined:
        return "required"
    if value is None:
        return "unset"
    if hasattr(value, "get_secret_value"):
        return "(secret)"
    text = json.dumps(value) if isinstance(value, (bool, list, dict)) else str(value)
    return f"`{text}`" if text else '`""`'


def _meaning(field: FieldInfo) -> str:
    return (field.description or "").replace("|", "\\|").replace("\n", " ")


def table() -> str:
    rows = ["| variable | applies to | default | meaning |", "|---|---|---|---|"]
    base = ServiceSettings.model_fields
    for name, env in SYSTEM_WIDE.items():
        rows.append(f"| `{env}` | every service (a prefixed one overrides it) | {_default(base[name])} "
                    f"| {_meaning(base[name])} |")
    for name, field in base.items():
        if name not in SYSTEM_WIDE and name != "service_name":
            rows.append(f"| `<SERVICE>_{name.upper()}` | every service | {_default(field)} | {_meaning(field)} |")
    for label, cls in classes():
        prefix = str(cls.model_config.get("env_prefix") or "")
        common = base if issubclass(cls, ServiceSettings) else {}
        for name, field in cls.model_fields.items():
            if name == "service_name":
                continue
            if name in common and field.default == common[name].default:
                continue  # the common row says it
            rows.append(f"| `{prefix}{name.upper()}` | {label} | {_default(field)} | {_meaning(field)} |")
    return "\n".join(rows) + "\n"


def render(readme: str) -> str:
    head, _, rest = readme.partition(BEGIN)
    _, _, tail = rest.partition(END)
    if not rest:
        raise ValueError(f"README.md has no {BEGIN} marker")
    return f"{head}{BEGIN}\n{table()}{END}{tail}"


def main(argv: list[str]) -> None:
    if "--write" in argv:
        path = Path(argv[argv.index("--write") + 1]) if len(argv) > argv.index("--write") + 1 else Path("README.md")
        path.write_text(render(path.read_text()))
    else:
        sys.stdout.write(table())


if __name__ == "__main__":
    main(sys.argv[1:])
