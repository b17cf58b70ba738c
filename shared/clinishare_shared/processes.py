"""Running the system as real processes, for the e2e and fault tests: free ports, a loopback SMTP server
that keeps what it receives (and can be stopped and restarted on its port), our services as separate
processes (several replicas each, killable with SIGKILL), and a private RabbitMQ node that a test may kill
without disturbing anything else on the machine."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email import message_from_bytes
from pathlib import Path
from typing import Any

import httpx

from clinishare_shared.ferretdb import free_port  # noqa: F401 - the one copy, for the process harnesses
from clinishare_shared.testing import wait_for
from clinishare_shared.lifecycle import terminate


def port_answers(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class Mailbox:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"

    def message_ids(self) -> list[str]:
        """The Message-ID of every message received, repeats included."""
        out = []
        for m in self.messages:
            content = m.content if isinstance(m.content, bytes) else str(m.content).encode()
            out.append(str(message_from_bytes(content).get("Message-ID", "")).strip())
        return out


class SmtpServer:
    """A real SMTP server on a fixed loopback port, stoppable (an outage) and restartable on that port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.mailbox = Mailbox()
        self._controller: Any = None

    def start(self) -> "SmtpServer":
        from aiosmtpd.controller import Controller

        self._controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@dataclass
class Proc:
    name: str
    module: str
    port: int
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None


@dataclass
class Processes:
    """Our processes by name (``charts-1``, ``charts-2``, ...), each with its own port and log file."""

    logs: Path
    procs: dict[str, Proc] = field(default_factory=dict)

    def add(self, name: str, module: str, env: Mapping[str, str], port: int | None = None) -> Proc:
        proc = Proc(name=name, module=module, port=port or free_port(), env=dict(env), log=self.logs / f"{name}.log")
        self.procs[name] = proc
        return proc

    def start(self, name: str, **env: str) -> Proc:
        proc = self.procs[name]
        proc.env.update(env)
        proc.starts += 1
        with proc.log.open("ab") as log:
            log.write(f"----- start {proc.starts} -----\n".encode())
        proc.popen = subprocess.Popen([sys.executable, "-m", proc.module], env=proc.env,
                                      stdout=proc.log.open("ab"), stderr=subprocess.STDOUT)
        return proc

    async def ready(self, *names: str, timeout: float = 90.0, path: str = "/readyz") -> None:
        """Wait until each process answers ``path`` with 200 (fail at once if one exits)."""
        async with httpx.AsyncClient() as client:
            for name in names:
                proc = self.procs[name]

                async def up(proc: Proc = proc) -> bool:
                    if proc.popen is not None and proc.popen.poll() is not None:
                        raise AssertionError(f"{proc.name} exited {proc.popen.returncode}:\n{self.tail(proc.name)}")
                    try:
                        return (await client.get(f"{proc.url}{path}", timeout=2)).status_code == 200
                    except httpx.HTTPError:
                        return False

                await wait_for(up, timeout=timeout, interval=0.1, message=f"{name} ready")

    def kill9(self, name: str) -> None:
        proc = self.procs[name]
        if proc.popen is not None and proc.popen.poll() is None:
            proc.popen.send_signal(signal.SIGKILL)
            proc.popen.wait()

    def stop(self, name: str) -> None:
        terminate(self.procs[name].popen, timeout=15)

    def stop_all(self) -> None:
        for name in self.procs:
            proc = self.procs[name]
            if proc.popen is not None and proc.popen.poll() is None:
                proc.popen.terminate()
        for name in self.procs:
            self.stop(name)

    def tail(self, name: str, chars: int = 4000) -> str:
        path = self.procs[name].log
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""


class PrivateRabbit:
    """A RabbitMQ node of our own (its node name, ports, data and log directories, cookie), so a test can
    ``kill -9`` it, restart it and close its connections without touching the shared broker.
    Management is disabled (no plugins)."""

    def __init__(self, base: Path, *, node: str, port: int, dist_port: int) -> None:
        self.base = Path(base)
        self.node = node
        self.port = port
        self.dist_port = dist_port
        self.popen: subprocess.Popen[bytes] | None = None
        server = shutil.which("rabbitmq-server", path="/usr/lib/rabbitmq/bin:" + os.environ.get("PATH", ""))
        ctl = shutil.which("rabbitmqctl", path="/usr/lib/rabbitmq/bin:" + os.environ.get("PATH", ""))
        if not server or not ctl:
            raise RuntimeError("rabbitmq-server is not installed (.ci/run installs it)")
        # the scripts in /usr/lib/rabbitmq/bin run as the calling user (the /usr/sbin wrappers switch to
        # the rabbitmq user and drop our environment)
        self.server, self.ctl_bin = server, ctl
        if Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists():
            self.server, self.ctl_bin = "/usr/lib/rabbitmq/bin/rabbitmq-server", "/usr/lib/rabbitmq/bin/rabbitmqctl"

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def env(self) -> dict[str, str]:
        b = self.base
        return {**os.environ, "HOME": str(b), "RABBITMQ_NODENAME": self.node, "RABBITMQ_NODE_PORT": str(self.port),
                "RABBITMQ_DIST_PORT": str(self.dist_port), "RABBITMQ_MNESIA_BASE": str(b / "mnesia"),
                "RABBITMQ_LOG_BASE": str(b / "log"), "RABBITMQ_ENABLED_PLUGINS_FILE": str(b / "enabled_plugins"),
                "RABBITMQ_PID_FILE": str(b / "rabbit.pid"), "RABBITMQ_CONFIG_FILE": str(b / "rabbitmq"),
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(b / "advanced.config"),
                "RABBITMQ_CONF_ENV_FILE": str(b / "rabbitmq-env.conf"), "RABBITMQCTL": self.ctl_bin}

    def start(self, timeout: float = 120.0) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / "enabled_plugins").write_text("[].\n")
        if port_answers(self.port):
            raise RuntimeError(f"port {self.port} is taken: is another private node running?")
        self.popen = subprocess.Popen([self.server], env=self.env, stdout=(self.base / "server.log").open("ab"),
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not port_answers(self.port):
            if self.popen.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited: {(self.base / 'server.log').read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("the private RabbitMQ node did not start in time")
            time.sleep(0.2)

    def beam_pid(self) -> int | None:
        try:
            return int((self.base / "rabbit.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def kill9(self) -> None:
        """SIGKILL the Erlang VM (no clean shutdown), then reap the start script."""
        pid = self.beam_pid()
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.popen is not None:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.popen.wait()
        deadline = time.monotonic() + 30
        while port_answers(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        result = subprocess.run([self.ctl_bin, "-n", self.node, *args], env=self.env, capture_output=True,
                                text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {result.stderr[-500:]}")
        return result.stdout

    def stop(self) -> None:
        try:
            self.ctl("stop", timeout=60)
        except Exception:
            pass
        self.kill9()


def start_ferretdb(data_dir: Path) -> Any:
    """A FerretDB of its own for processes that must share one database server (replicas)."""
    from clinishare_shared.ferretdb import FerretDB

    return FerretDB(data_dir).start()


async def settle(seconds: float) -> None:
    """A deliberate quiet period (after a fault) in which nothing more must happen; not a wait for a
    condition (use wait_for for that)."""
    await asyncio.sleep(seconds)
