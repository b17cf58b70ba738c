"""Which service owns which path: used by the all-in-one process and by the gateway, so they agree."""

from __future__ import annotations

# longest prefix wins
ROUTES: list[tuple[str, str]] = [
    ("/.well-known/jwks.json", "identity"),
    ("/v1/accounts", "identity"),
    ("/v1/auth", "identity"),
    ("/v1/me", "identity"),
    ("/v1/offices", "identity"),
    ("/v1/connections", "identity"),
    ("/v1/sharing-list", "identity"),
    ("/v1/patients", "identity"),
    ("/v1/portal/activate", "identity"),
    ("/v1/charts", "charts"),
    ("/v1/chart-shares", "charts"),
    ("/v1/documents", "documents"),
    ("/v1/portal/documents", "documents"),
    ("/v1/forms", "forms"),
    ("/v1/assignments", "forms"),
    ("/v1/portal/forms", "forms"),
    ("/v1/notifications", "notify"),
    ("/v1/notification-preferences", "notify"),
]

SERVICES = ["identity", "charts", "documents", "forms", "notify"]
DEFAULT_PORTS = {"gateway": 8000, "identity": 8001, "charts": 8002, "documents": 8003, "forms": 8004, "notify": 8005}


def owner_of(path: str) -> str | None:
    best: tuple[int, str] | None = None
    for prefix, service in ROUTES:
        if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
            if best is None or len(prefix) > best[0]:
                best = (len(prefix), service)
    return best[1] if best else None
