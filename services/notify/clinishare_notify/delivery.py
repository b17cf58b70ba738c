"""The e-mail worker: sends the e-mails of the notices its own process just wrote, handed over from memory
(``take``: the notice was written with the first attempt already claimed in the worker's name, see
``service.EmailIntake``), then claims due e-mails a batch at a time, found on the due queue (``store``: a
small collection of the e-mails in flight, not a scan of every notification), each attempt by a unique
insert, so several replicas never send the same one; sends them (several at once), and records the outcome
on the notification (a batch's sends in one write). A failed send is retried with exponential
back-off for ``email_retry_seconds`` (24 h) from the notification's creation, then marked failed for good. It is woken after each insert and
polls besides, so e-mails whose back-off ran out, or whose worker died mid-send, are picked up too.

Delivery is at least once: a worker that dies after the server accepted a message but before recording
it re-sends after the lease, and a timeout after DATA (the server may have taken it) is retried. Every
attempt carries the notification's one Message-ID, so a receiver drops the second copy. The inbox entry never depends on any of this.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
import structlog

from clinishare_shared.foreground import Foreground
from clinishare_shared.observability import EMAILS_FAILED, EMAILS_SENT
from clinishare_shared.projection import IdentityProjection
from clinishare_shared.lifecycle import cancel_and_wait

from clinishare_notify.domain import delivery
from clinishare_notify.domain.stored import NotificationDoc
from clinishare_notify.domain.messages import email
from clinishare_notify.mailer import Mailer, SendFailed
from clinishare_notify.service import People, people, reopen_if_address_known
from clinishare_notify.settings import NotifySettings
from clinishare_notify.store import NotifyStore, aware, now

log = structlog.get_logger("clinishare.notify.delivery")
BATCH = 25  # e-mails claimed from one read of the due ones (each claim still one unique insert)
SENDING = 8  # e-mails in delivery at once per worker (their database round trips overlap)
COALESCE_SECONDS = 0.25
FRESH_KEPT = 1000  # e-mails taken from the consumer and not sent yet, at most (then they wait on the queue)
# each step of an e-mail waits at most this long for the events in processing (clinishare_shared.foreground)
FOREGROUND_WAIT_SECONDS = 0.05


class EmailWorker:
    def __init__(self, *, store: NotifyStore, projection: IdentityProjection, mailer: Mailer | None,
                 settings: NotifySettings, foreground: Foreground | None = None) -> None:
        self.store = store
        self.foreground = foreground
        self.projection = projection
        self.mailer = mailer
        self.settings = settings
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._retries: list[datetime] = []  # when the e-mails this worker failed are due again
        self._fresh: list[tuple[NotificationDoc, str]] = []  # taken from the consumer (``take``), not sent yet

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self.mailer is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="notify:email-worker")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        if self._fresh:  # claimed in their notices: sent from the due queue once the claims run out
            log.info("emails_left_to_their_claims", count=len(self._fresh))
            self._fresh = []
        if (close := getattr(self.mailer, "close", None)) is not None:
            await asyncio.to_thread(close)  # the SMTP sessions it kept open

    async def _run(self) -> None:
        queued = False
        while True:
            self._wake.clear()  # a wake during the pass asks for another one
            try:
                if not queued:  # once: e-mails made pending before the due queue existed
                    if n := await self.store.queue_unqueued():
                        log.info("emails_queued_at_start", count=n)
                    queued = True
                await self.run_once()
                timeout = await self._sleep_for()
            except asyncio.CancelledError:
                raise
            except Exception:
                # the database is away: try again after a poll interval, never die silently
                log.warning("email_worker_pass_failed", exc_info=True)
                timeout = self.settings.email_poll_seconds
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
                # woken by an insert: let the burst it belongs to land, so one read of the due e-mails
                # (a collection scan on FerretDB) serves many of them
                await asyncio.sleep(COALESCE_SECONDS)

    async def _sleep_for(self) -> float:
        """Until the earliest retry this worker scheduled, at most a poll (which also finds other
        replicas' retries and e-mails whose worker died). Kept in memory: asking the database for the next
        due e-mail after every pass was one more collection scan on FerretDB."""
        poll = self.settings.email_poll_seconds
        at = now()
        self._retries = [t for t in self._retries if t > at]
        if not self._retries:
            return poll
        return max(0.0, min(poll, (min(self._retries) - at).total_seconds()))

    async def _turn(self) -> None:
        """Before each step: the events notify is processing go first (their notices are what someone waits
        for; an e-mail goes out seconds later either way), for at most ``FOREGROUND_WAIT_SECONDS``, so a
        steady stream of events slows e-mails down but never stops them."""
        if self.foreground is not None:
            await self.foreground.quiet(FOREGROUND_WAIT_SECONDS)

    def lease(self) -> datetime | None:
        """``EmailIntake.lease``: a claim of ``email_lease_seconds`` from now while this worker runs and
        sends, and is not already holding ``FRESH_KEPT`` e-mails it took (then the notice's e-mail is left
        pending, for the due queue)."""
        if self._task is None or self._task.done() or self.mailer is None or len(self._fresh) >= FRESH_KEPT:
            return None
        return now() + timedelta(seconds=self.settings.email_lease_seconds)

    def take(self, notification: NotificationDoc, address: str) -> None:
        """``EmailIntake.take``: sent at the worker's next pass, before the due queue is read."""
        self._fresh.append((notification, address))
        self._wake.set()

    def withdraw(self, notification_ids: list[str]) -> list[str]:
        """``EmailIntake.withdraw``: the e-mails of these notices taken and not yet picked up by a pass are
        dropped (one a pass holds is being sent); their ids."""
        ids = set(notification_ids)
        given_up = [doc["_id"] for doc, _ in self._fresh if doc["_id"] in ids]
        if given_up:
            self._fresh = [(doc, address) for doc, address in self._fresh if doc["_id"] not in ids]
        return given_up

    async def run_once(self) -> int:
        """Send the e-mails taken from the consumer (``take``) since the last pass, then every e-mail due
        now, a claimed batch at a time (``BATCH`` from one read); ``SENDING`` of them at once. The number of
        sends attempted."""
        attempted = 0
        lanes = asyncio.Semaphore(SENDING)

        async def deliver(doc: NotificationDoc, sent: list[str], people: People) -> int:
            async with lanes:
                await self._turn()
                return await self._deliver(doc, sent, people)

        async def send(batch: list[NotificationDoc], people: People | None) -> int:
            sent: list[str] = []
            try:
                if people is None:
                    people = await self.people(batch)
                return sum(await asyncio.gather(*(deliver(doc, sent, people) for doc in batch)))
            finally:
                await self._turn()
                await self.store.emails_sent(sent)  # the batch's sends in one write

        fresh, self._fresh = self._fresh, []
        for start in range(0, len(fresh), BATCH):
            part = fresh[start:start + BATCH]
            await self._turn()
            # their recipients' address and preference were read by the consumer as it wrote the notices,
            # moments ago: not read again
            attempted += await send([doc for doc, _ in part], ({doc["recipient_id"]: {"email": address}
                                                                for doc, address in part},
                                                               {doc["recipient_id"]: True for doc, _ in part}))
        while True:
            await self._turn()
            batch = await self.store.claim_emails(lease_seconds=self.settings.email_lease_seconds, limit=BATCH)
            if not batch:
                break
            attempted += await send(batch, None)
        return attempted

    async def people(self, batch: list[NotificationDoc]) -> People:
        """The preference and the address, checked again at send time (either may have changed since the
        notice was written): for a whole claimed batch, one read of each."""
        recipients = [doc["recipient_id"] for doc in batch]
        return await people(self.store, self.projection, recipients, recipients)

    async def _deliver(self, doc: NotificationDoc, sent: list[str], people: People) -> int:
        """Send one claimed e-mail; a success is appended to ``sent`` (recorded with its batch). ``people``:
        the batch's recipients' accounts and whether each wants e-mail, read at send time."""
        nid, attempts = doc["_id"], doc["email"]["attempts"]
        ctx = {"notification_id": nid, "event_type": doc["type"], "attempt": attempts}
        accounts, wants = people
        account = accounts.get(doc["recipient_id"]) or {}
        reason = delivery.skip_reason(smtp_enabled=self.mailer is not None, wants_email=wants[doc["recipient_id"]],
                                      address=account.get("email"), kind=doc["recipient_kind"])
        if reason is not None or self.mailer is None:
            await self.store.email_skipped(nid, reason or "email_disabled")
            log.info("email_skipped", reason=reason, **ctx)
            if reason == "no_address":  # an address that arrived meanwhile makes it due again
                await reopen_if_address_known(store=self.store, projection=self.projection,
                                              account_id=doc["recipient_id"])
            return 0
        if aware(doc["email"]["lease_until"]) <= now():
            # the claim ran out before its turn came (a slow database): another worker may hold it now, so
            # sending it here could send it twice; it is claimed again, not lost
            log.warning("email_lease_lapsed", **ctx)
            return 0
        message = email(doc["title"], doc["item"], doc["link"], base_url=self.settings.public_base_url)
        await self._turn()
        try:
            await self.mailer.send(account["email"], message, message_id=delivery.message_id(nid))
        except SendFailed as exc:
            age = (now() - aware(doc["created_at"])).total_seconds()
            if delivery.after_failure(attempts, max_attempts=self.settings.email_max_attempts, age_seconds=age,
                                      retry_seconds=self.settings.email_retry_seconds) == "failed":
                await self.store.email_failed(nid, error=exc.reason, retry_at=None)
                EMAILS_FAILED.labels("true").inc()
                log.error("email_failed_giving_up", error=exc.reason, **ctx)
            else:
                delay = delivery.backoff_seconds(attempts, base=self.settings.email_backoff_base_seconds,
                                                 cap=self.settings.email_backoff_max_seconds)
                retry_at = now() + timedelta(seconds=delay)
                await self.store.email_failed(nid, error=exc.reason, retry_at=retry_at)
                self._retries.append(retry_at)
                EMAILS_FAILED.labels("false").inc()
                log.warning("email_failed_will_retry", error=exc.reason, retry_in_seconds=delay, **ctx)
            return 1
        sent.append(nid)
        EMAILS_SENT.inc()
        log.info("email_sent", **ctx)
        return 1
