"""Fixtures of the strategies tests: a gate on the trials of the processes a test starts, and a
throwaway PostgreSQL server on loopback, for the tests of workers sharing a database.

``gate`` (``strategies/fault_hooks.py``, switched on for a process by ``gate.env``) holds
every trial of those processes just before it trains until the test lets its ticket
through, so a test that kills a process mid-search knows exactly which trials finished and
which were training: it never bets on a trial being fast or slow (the machine may be loaded).

``postgres_url`` yields a SQLAlchemy URL of a fresh, empty database on a server that this
module starts once per test session: ``initdb`` into a temporary folder, ``postgres`` on
127.0.0.1 at a free port with its unix socket in that folder, fsync off (the data is thrown
away, so durability only costs time). PostgreSQL refuses to run as root, so under root the
server runs as the ``postgres`` user (or ``nobody``), which then owns the folder.

A test that asks for it is skipped, with the reason, where the server binaries or the
psycopg2 driver are missing or the server does not start (``.ci/run`` installs them where
it can). Every step has a time limit, so a broken installation skips instead of hanging.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from optinas.strategies import fault_hooks

_STEP_TIMEOUT_S = 60  # initdb, start and stop each finish in a few seconds on a 2-core machine
_BINARIES = ("initdb", "pg_ctl", "postgres")
_SUPERUSER = "optinas"
_databases = itertools.count()


@dataclass(frozen=True)
class _Server:
    root: Path
    port: int
    run_as: str | None  # the user the server runs as when the tests run as root

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg2://{_SUPERUSER}@127.0.0.1:{self.port}/{database}"


def _bin_dir() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres: on PATH, else the newest Debian install."""
    found = [shutil.which(name) for name in _BINARIES]
    if all(found):
        return Path(os.path.realpath(found[0])).parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                         key=lambda p: [int(x) for x in Path(p).parent.name.split(".") if x.isdigit()],
                         reverse=True):
        if all(os.access(Path(folder) / name, os.X_OK) for name in _BINARIES):
            return Path(folder)
    return None


def _server_user() -> str | None:
    """Who runs the server: ourselves, or under root an unprivileged account that exists."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    pytest.skip("PostgreSQL refuses to run as root and there is no 'postgres' or 'nobody' user")


def _as_user(command: list[str], user: str | None) -> list[str]:
    if user is None:
        return command
    if shutil.which("runuser"):
        return ["runuser", "-u", user, "--", *command]
    return ["su", "-s", "/bin/sh", user, "-c", shlex.join(command)]


def _run(command: list[str], user: str | None, what: str) -> None:
    """Run one setup step; any failure or overrun skips the test with the step's output."""
    # A session of its own: on overrun the whole group goes (runuser forks the real command).
    process = subprocess.Popen(_as_user(command, user), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=_STEP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise _SetupFailed(f"{what} did not finish within {_STEP_TIMEOUT_S} s")
    if process.returncode != 0:
        raise _SetupFailed(f"{what} failed: {(stderr or stdout).strip()[-500:]}")


class _SetupFailed(Exception):
    """A step of starting the server failed; the fixture turns it into a skip."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start(bin_dir: Path, user: str | None) -> _Server:
    # mkdtemp under /tmp: short enough for a unix socket path (107 bytes), and unlike
    # pytest's tmp_path (inside a root-only folder) reachable by the server's user.
    root = Path(tempfile.mkdtemp(prefix="optinas-pg-"))
    if user is not None:
        account = pwd.getpwnam(user)
        os.chown(root, account.pw_uid, account.pw_gid)
    server = _Server(root=root, port=0, run_as=user)
    try:
        _run([str(bin_dir / "initdb"), "-D", str(server.data), "-U", _SUPERUSER, "--auth=trust",
              "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"], user, "initdb")
        # The free port can be taken between probing and binding; another port settles it.
        for attempt in range(3):
            server = _Server(root=root, port=_free_port(), run_as=user)
            options = (f"-c listen_addresses=127.0.0.1 -c port={server.port} "
                       f"-c unix_socket_directories={root} -c fsync=off -c synchronous_commit=off "
                       "-c full_page_writes=off -c max_connections=60 -c shared_buffers=16MB")
            try:
                _run([str(bin_dir / "pg_ctl"), "start", "-D", str(server.data), "-w",
                      "-t", str(_STEP_TIMEOUT_S - 10), "-l", str(root / "server.log"), "-o", options],
                     user, "pg_ctl start")
                return server
            except _SetupFailed:
                _stop(bin_dir, server)
                if attempt == 2:
                    raise
    except BaseException:
        _stop(bin_dir, server)
        shutil.rmtree(root, ignore_errors=True)
        raise
    raise AssertionError("unreachable: the last attempt re-raises")


def _stop(bin_dir: Path, server: _Server) -> None:
    """Stop the server: immediate shutdown, else SIGKILL the postmaster from its pid file."""
    if not (server.data / "postmaster.pid").exists():
        return
    try:
        _run([str(bin_dir / "pg_ctl"), "stop", "-D", str(server.data), "-m", "immediate", "-t", "20"],
             server.run_as, "pg_ctl stop")
    except _SetupFailed:
        try:
            pid = int((server.data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            pass


def _connect(server: _Server, database: str = "postgres"):
    import psycopg2

    return psycopg2.connect(host="127.0.0.1", port=server.port, user=_SUPERUSER, dbname=database,
                            connect_timeout=10)


@pytest.fixture(scope="session")
def postgres_server():
    """One PostgreSQL server for the session (started on first use, removed at the end)."""
    try:
        import psycopg2  # noqa: F401  (the driver SQLAlchemy uses for postgresql+psycopg2 URLs)
    except ImportError:
        pytest.skip("the psycopg2 driver is not installed (pip install -e \".[test]\" installs it)")
    bin_dir = _bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH "
                    "or under /usr/lib/postgresql/*/bin")
    user = _server_user()
    try:
        server = _start(bin_dir, user)
    except _SetupFailed as failure:
        pytest.skip(f"could not start PostgreSQL on loopback: {failure}")
    try:
        yield server
    finally:
        _stop(bin_dir, server)
        shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A SQLAlchemy URL of a new empty database on the session's server, dropped afterwards."""
    database = f"optinas_test_{os.getpid()}_{next(_databases)}"
    connection = _connect(postgres_server)
    connection.autocommit = True  # CREATE DATABASE cannot run inside a transaction
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{database}"')
    finally:
        connection.close()
    yield postgres_server.url(database)
    connection = _connect(postgres_server)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            # WITH (FORCE) ends sessions a killed worker's process may still hold open.
            cursor.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        connection.close()


_GUARD_S = 600  # a failure guard only: every wait below ends on an event, long before this


class Gate:
    """The test's side of ``fault_hooks``' gate: which trials arrived, how many may train."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir()

    @property
    def env(self) -> dict[str, str]:
        """Environment variables that put a process's trials behind this gate."""
        return {fault_hooks.GATE_ENV: str(self.folder)}

    def open(self, tickets: int) -> None:
        """Let the first ``tickets`` trials to arrive (in ticket order) train."""
        fault_hooks.open_gate(self.folder, tickets)

    def arrivals(self) -> list[tuple[int, int, int]]:
        """(ticket, trial number, pid) of each trial that reached the gate, in ticket order."""
        return fault_hooks.arrivals(self.folder)

    @staticmethod
    def wait(condition, what: str, processes=(), poll_s: float = 0.05):
        """Poll ``condition()`` until it returns something truthy, and return that.

        Fails the test, saying what it waited for, when one of ``processes`` (``Popen``) exits
        first or after ``_GUARD_S`` (a guard: the condition is the synchronisation).
        """
        deadline = time.monotonic() + _GUARD_S
        while not (found := condition()):
            for process in processes:
                if process.poll() is not None:
                    output = process.stderr.read() if process.stderr else b""
                    output = output.decode(errors="replace") if isinstance(output, bytes) else output
                    pytest.fail(f"waiting for {what}: {process.args[3:5]} exited with {process.returncode}:\n"
                                f"{output[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"waited {_GUARD_S} s for {what}")
            time.sleep(poll_s)
        return found


@pytest.fixture
def gate(tmp_path) -> Gate:
    """A closed gate in a new folder: no trial of a process started with ``gate.env`` trains yet."""
    return Gate(tmp_path / "gate")
