"""What notify consumes: event type -> handler (``consumed``). notify publishes nothing. What each
handler does is in ``service``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from functools import partial

from clinishare_shared.bus.base import Handler
from clinishare_shared.events import AccountRegistered, Envelope
from clinishare_shared.projection import IdentityProjection

from clinishare_notify import service
from clinishare_notify.settings import NotifySettings
from clinishare_notify.store import NotifyStore


def chain(*maps: Mapping[str, Handler]) -> dict[str, Handler]:
    """Merge handler maps; where several handle one type they run in the order given (the projection
    first, so a notice for ``identity.connection.created`` sees the projection already updated)."""
    by_type: dict[str, list[Handler]] = defaultdict(list)
    for m in maps:
        for event_type, handler in m.items():
            by_type[event_type].append(handler)

    def run_all(handlers: Sequence[Handler]) -> Handler:
        async def run(event: Envelope) -> None:
            for h in handlers:
                await h(event)

        return run

    return {t: hs[0] if len(hs) == 1 else run_all(hs) for t, hs in by_type.items()}


def consumed(projection: IdentityProjection, *, store: NotifyStore, settings: NotifySettings,
             on_created: Callable[[], None] = lambda: None,
             emails: service.EmailIntake | None = None) -> dict[str, Handler]:
    """The identity projection's handlers first, then the notices (``on_created`` wakes the e-mail worker,
    ``emails`` takes the e-mails of the notices written here: ``service.EmailIntake``)."""
    deps = {"store": store, "projection": projection, "settings": settings, "on_created": on_created,
            "emails": emails}
    own: dict[str, Handler] = {m.event_type: partial(service.notify, **deps) for m in service.NOTIFYING}
    own |= {m.event_type: partial(service.grant_ended, **deps) for m in service.GRANT_ENDED}
    own |= {m.event_type: partial(service.document_share_ended, **deps) for m in service.DOCUMENT_SHARE_ENDED}
    own[AccountRegistered.event_type] = partial(service.account_registered, store=store, on_created=on_created)
    return chain(projection.handlers, own)
