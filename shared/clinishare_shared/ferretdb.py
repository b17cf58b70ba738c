"""FerretDB as the local database engine: find the binary the Makefile built, run it on a data directory,
wait until it answers, stop it with the process that started it.

FerretDB speaks MongoDB's wire protocol; with its SQLite handler it keeps one SQLite file per database in
a directory and needs no other server. It is what ``make run`` and ``make test`` use where no MongoDB
server exists (``MONGODB_URL`` still wins). The binary is built by ``make ferretdb`` into
``.tools/bin/ferretdb`` from ``tools/ferretdb`` (a small launcher around FerretDB's embeddable package
at a pinned version); ``FERRETDB_BIN`` points elsewhere.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from clinishare_shared.lifecycle import terminate
from pathlib import Path

VERSION = "v1.24.2"
LABEL = f"FerretDB {VERSION} (SQLite handler)"

# What we add to FerretDB's SQLite URL. FerretDB's pool already sets busy_timeout(10000), journal_mode(wal)
# and auto_vacuum(none) (internal/backends/sqlite/metadata/pool/uri.go); SQLite's default synchronous=FULL
# then fsyncs the WAL on every commit. synchronous(normal) in WAL mode syncs only at checkpoints: a commit
# survives a crash of FerretDB or of any process, and only a power loss or an OS crash can lose the last
# commits before the next checkpoint (never corrupt the file). Local and test data only: production runs on
# MongoDB.
SQLITE_QUERY = "_pragma=synchronous(normal)"


class FerretDBUnavailable(RuntimeError):
    pass


def find_binary(root: Path | None = None) -> Path | None:
    """``FERRETDB_BIN``, else ``<root>/.tools/bin/ferretdb`` (root: this checkout), else ``ferretdb`` on PATH."""
    env = os.environ.get("FERRETDB_BIN")
    if env:
        return Path(env) if Path(env).is_file() else None
    root = root or project_root()
    if root is not None and (root / ".tools" / "bin" / "ferretdb").is_file():
        return root / ".tools" / "bin" / "ferretdb"
    found = shutil.which("ferretdb")
    return Path(found) if found else None


def project_root() -> Path | None:
    """The checkout this package is installed from (editable installs), found by its Makefile."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "Makefile").is_file() and (parent / "shared").is_dir():
            return parent
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _die_with_parent() -> None:
    """In the child, before exec: on Linux, get SIGTERM when the process that started us dies (even by
    SIGKILL), so no FerretDB outlives `make run` or a test run."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class FerretDB:
    """One FerretDB process on loopback. ``start()`` returns once it accepts connections."""

    def __init__(self, data_dir: Path, *, port: int | None = None, binary: Path | None = None,
                 log_file: Path | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.binary = binary or find_binary()
        self.log_file = log_file or self.data_dir / "ferretdb.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.sqlite_query = SQLITE_QUERY

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    @property
    def sqlite_url(self) -> str:
        base = f"file:{self.data_dir.resolve()}/"
        return f"{base}?{self.sqlite_query}" if self.sqlite_query else base

    def start(self, timeout: float = 30.0) -> "FerretDB":
        if self.binary is None:
            raise FerretDBUnavailable("no FerretDB binary: run `make ferretdb` (needs Go) or set FERRETDB_BIN")
        if _answers(self.port):
            raise FerretDBUnavailable(f"port {self.port} is already in use")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_file, "ab")  # noqa: SIM115 - handed to the child process, closed with it
        self.process = subprocess.Popen(
            [str(self.binary), f"--listen-addr=127.0.0.1:{self.port}",
             f"--sqlite-url={self.sqlite_url}", "--log-level=warn"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not _answers(self.port):
            if self.process.poll() is not None:
                raise FerretDBUnavailable(f"FerretDB exited with {self.process.returncode}; see {self.log_file}")
            if time.monotonic() > deadline:
                self.stop()
                raise FerretDBUnavailable(f"FerretDB did not listen on {self.port} within {timeout}s")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        terminate(self.process)
        self.process = None

    def __enter__(self) -> "FerretDB":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
