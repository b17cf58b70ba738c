"""E-mail and inbox links. notify builds them from API paths (`/v1/charts/{id}`, `/v1/portal/forms`, ...)
under NOTIFY_PUBLIC_BASE_URL; the console serves the same path without `/v1` (`/charts/{id}`), and a
browser that opens the API path is sent there (see clinishare_shared.routes.browser_redirect)."""

from __future__ import annotations


def console_path(api_link: str) -> str:
    if api_link.startswith("/v1/"):
        return api_link[3:]
    return api_link if api_link.startswith("/") and not api_link.startswith("//") else "/notifications"
