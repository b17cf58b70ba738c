"""What notify consumes: event type -> handler (``consumed``). notify publishes nothing. What each
handler does is in ``service`` (``NotifyHandlers``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from clinishare_shared.bus.base import Handler
from clinishare_shared.events import Envelope
from clinishare_shared.projection import IdentityProjection

from clinishare_notify.service import NotifyHandlers


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


def consumed(projection: IdentityProjection, notifier: NotifyHandlers) -> dict[str, Handler]:
    """The identity projection's handlers first, then the notices."""
    return chain(projection.handlers, notifier.handlers)
