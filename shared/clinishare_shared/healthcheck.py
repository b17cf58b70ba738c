"""The container health check: ``python -m clinishare_shared.healthcheck`` (the image's HEALTHCHECK).

It loads the running app's settings class (``$CLINISHARE_APP.settings``) from the same environment the
process has, so it asks exactly the address the process listens on, and exits 0 only when ``/readyz``
answers 200 (database and broker reachable). ``--live`` asks ``/healthz`` instead.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import urllib.request

from clinishare_shared.settings import ProcessSettings


def settings_class(app: str) -> type[ProcessSettings]:
    """The one settings class an app's ``settings`` module defines."""
    module = importlib.import_module(f"{app}.settings")
    found = [c for _, c in inspect.getmembers(module, inspect.isclass)
             if issubclass(c, ProcessSettings) and c.__module__ == module.__name__]
    if len(found) != 1:
        raise LookupError(f"{module.__name__} defines {len(found)} settings classes, expected one")
    return found[0]


def probe_url(settings: ProcessSettings, path: str) -> str:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://{host}:{settings.port}{path}"


def main(argv: list[str]) -> int:
    app = os.environ.get("CLINISHARE_APP")
    if not app:
        print("CLINISHARE_APP is not set", file=sys.stderr)
        return 2
    url = probe_url(settings_class(app)(), "/healthz" if "--live" in argv else "/readyz")
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 (loopback, our own URL)
            return 0 if resp.status == 200 else 1
    except OSError as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
