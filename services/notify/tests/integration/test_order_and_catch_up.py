"""Order-safe and catch-up behaviour of notify: a revoke or unshare that overtakes its grant leaves no
notice behind; an e-mail skipped for want of an address goes out once the address arrives; every attempt
of one e-mail carries one Message-ID, also after a timeout after DATA."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

from clinishare_shared.events import (
    ChartShareGranted, ChartShareRevoked, DocumentShared, DocumentUnshared, make_event,
)
from clinishare_shared.testing import wait_for


def _grant(grant_id: str, to: list[str]) -> ChartShareGranted:
    return ChartShareGranted(grant_id=grant_id, owner_id="alice", rule="all", practitioner_ids=to, office_ids=[])


async def test_a_revoke_that_arrives_before_its_grant_leaves_no_notice(start_notify: Any, smtp: Any) -> None:
    svc = await start_notify(smtp_host="127.0.0.1", smtp_port=smtp.port)
    await svc.account("bob", name="Dr. Bob", email="bob@clinic.test")
    granted = make_event(_grant("g1", ["bob"]), source="charts", subject="g1")
    revoked = make_event(ChartShareRevoked(**_grant("g1", ["bob"]).model_dump()), source="charts", subject="g1")
    await svc.bus.publish(revoked)
    await svc.settled(revoked)
    await svc.bus.publish(granted)  # the older event, late
    await svc.settled(granted)
    assert await svc.notifications() == []
    # a grant made AFTER the revoke of another grant is told as usual (tombstones are per grant)
    await svc.publish(_grant("g2", ["bob"]), source="charts")
    assert [n["ref"]["grant_id"] for n in await svc.notifications()] == ["g2"]
    await wait_for(lambda: len(smtp.messages) == 1, message="one e-mail, for g2 only")
    assert await svc.worker.run_once() == 0 and len(smtp.messages) == 1


async def test_an_unshare_before_its_share_drops_only_the_unshared_recipient(start_notify: Any) -> None:
    svc = await start_notify()
    shared = make_event(DocumentShared(document_id="d1", owner_id="alice", practitioner_ids=["bob", "carol"]),
                        source="documents", subject="d1")
    unshared = make_event(DocumentUnshared(document_id="d1", owner_id="alice", practitioner_ids=["bob"]),
                          source="documents", subject="d1")
    await svc.bus.publish(unshared)
    await svc.settled(unshared)
    await svc.bus.publish(shared)
    await svc.settled(shared)
    assert [n["recipient_id"] for n in await svc.notifications()] == ["carol"]
    # shared with bob again AFTER the unshare (a later event): he is told
    later = await svc.publish(DocumentShared(document_id="d1", owner_id="alice", practitioner_ids=["bob"]),
                              source="documents")
    assert await svc.db["notifications"].find_one({"_id": f"{later.id}:bob"}) is not None


async def test_an_email_skipped_for_want_of_an_address_goes_out_when_it_arrives(start_notify: Any, smtp: Any) -> None:
    svc = await start_notify(smtp_host="127.0.0.1", smtp_port=smtp.port)
    share = await svc.publish(_grant("g1", ["bob"]), source="charts")  # bob's account event has not come yet
    note = await svc.db["notifications"].find_one({"_id": f"{share.id}:bob"})
    assert note["email"] == {"status": "skipped", "reason": "no_address", "attempts": 0}
    await svc.account("bob", name="Dr. Bob", email="bob@clinic.test")
    await wait_for(lambda: len(smtp.messages) == 1, message="the e-mail once the address is known")
    assert smtp.messages[0].rcpt_tos == ["bob@clinic.test"]
    await svc.account("bob", name="Dr. Bob", email="bob@clinic.test")  # again (redelivery): nothing more
    assert await svc.worker.run_once() == 0 and len(smtp.messages) == 1


class SlowAfterData:
    """An SMTP server that takes every message and then answers DATA later than the client waits."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.message_ids: list[str] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.slow = True
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        f = conn.makefile("rwb")
        f.write(b"220 slow ready\r\n"); f.flush()
        try:
            while line := f.readline():
                cmd = line.strip().upper()
                if cmd.startswith(b"EHLO") or cmd.startswith(b"HELO"):
                    f.write(b"250 ok\r\n")
                elif cmd == b"DATA":
                    f.write(b"354 go on\r\n"); f.flush()
                    body = b""
                    while (chunk := f.readline()) not in (b".\r\n", b""):
                        body += chunk
                    for header in body.split(b"\r\n"):
                        if header.lower().startswith(b"message-id:"):
                            self.message_ids.append(header.split(b":", 1)[1].strip().decode())
                    if self.slow:
                        import time
                        time.sleep(self.delay)  # taken, but the answer comes after the client's timeout
                    f.write(b"250 queued\r\n")
                elif cmd == b"QUIT":
                    f.write(b"221 bye\r\n"); f.flush()
                    break
                else:
                    f.write(b"250 ok\r\n")
                f.flush()
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.sock.close()


async def test_a_timeout_after_data_is_retried_with_the_same_message_id(start_notify: Any) -> None:
    server = SlowAfterData(delay=1.0)
    try:
        svc = await start_notify(smtp_host="127.0.0.1", smtp_port=server.port, smtp_timeout_seconds=0.3)
        await svc.account("bob", name="Dr. Bob", email="bob@clinic.test")
        share = await svc.publish(_grant("g1", ["bob"]), source="charts")
        await wait_for(lambda: len(server.message_ids) >= 1, message="first attempt reached DATA")
        server.slow = False
        await wait_for(lambda: svc.db["notifications"].find_one({"_id": f"{share.id}:bob", "email.status": "sent"}),
                       timeout=15, message="sent on a retry")
        assert len(server.message_ids) >= 2  # the server got it twice ...
        assert set(server.message_ids) == {f"<{share.id}.bob@notify.clinishare>"}  # ... with one Message-ID
        await asyncio.sleep(0)
    finally:
        server.close()


async def test_a_notify_started_after_identity_published_learns_addresses_from_the_stream(
        start_notify: Any, smtp: Any, request: Any, unique: str) -> None:
    """No notify queue existed when Bob's account was announced (no topology step here): the stream kept
    it, and notify's empty projection replays it at start, so Bob's address is known."""
    import aio_pika

    from clinishare_shared.bus.rabbit import RabbitBus
    from clinishare_shared.bus.stream import StreamSpec, declare_stream, stream_name
    from clinishare_shared.events import AccountRegistered

    amqp_url = request.getfixturevalue("amqp_url")
    exchange = f"test.{unique}"
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        await declare_stream(connection, exchange=exchange, spec=StreamSpec(name=stream_name(exchange)))
    early = RabbitBus(amqp_url, exchange=exchange)
    await early.start()
    try:
        await early.publish(make_event(AccountRegistered(account_id="bob", kind="practitioner", name="Dr. Bob",
                                                         email="bob@clinic.test"), source="identity", subject="bob"))
    finally:
        await early.close()
    svc = await start_notify(rabbit=True, smtp_host="127.0.0.1", smtp_port=smtp.port)
    await wait_for(lambda: svc.db["idp_accounts"].find_one({"_id": "bob"}), timeout=20,
                   message="the projection caught up from the stream")
    share = await svc.publish(_grant("g1", ["bob"]), source="charts")
    await wait_for(lambda: len(smtp.messages) == 1, timeout=20, message="e-mailed with the replayed address")
    note = await svc.db["notifications"].find_one({"_id": f"{share.id}:bob"})
    assert note["email"]["status"] in ("sending", "sent")
