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
    # a "*" segment matches any one path segment (here: a patient id)
    ("/v1/patients/*/disclosures", "audit"),
    ("/v1/patients/*/disclosures.csv", "audit"),
    ("/v1/portal/disclosures", "audit"),
    ("/v1/portal/disclosures.csv", "audit"),
]

SERVICES = ["identity", "charts", "documents", "forms", "notify", "audit"]
DEFAULT_PORTS = {"gateway": 8000, "identity": 8001, "charts": 8002, "documents": 8003, "forms": 8004, "notify": 8005, "audit": 8007}


def _matches(prefix: str, path: str) -> bool:
    """``path`` is ``prefix`` or below it; a ``*`` segment of the prefix matches any one segment."""
    want = prefix.rstrip("/").split("/")
    got = path.split("/")
    if len(got) < len(want):
        return False
    return all(w == "*" or w == g for w, g in zip(want, got))


def owner_of(path: str) -> str | None:
    best: tuple[int, str] | None = None
    for prefix, service in ROUTES:
        if _matches(prefix, path):
            if best is None or len(prefix) > best[0]:
                best = (len(prefix), service)
    return best[1] if best else None


def browser_redirect(method: str, path: str, headers: dict[str, str]) -> str | None:
    """Where a browser that opened an API link (an e-mail's `/v1/charts/{id}`) is sent: the console page of
    the same item, i.e. the path without `/v1`. Only a top-level navigation qualifies: a GET that asks for
    HTML first and carries no bearer token; API clients never get a redirect."""
    if method != "GET" or not path.startswith("/v1/") or "authorization" in headers:
        return None
    dest = headers.get("sec-fetch-dest")
    accept = headers.get("accept", "")
    if dest == "document" or (dest is None and accept.split(",")[0].strip().startswith("text/html")):
        return path[3:]
    return None
