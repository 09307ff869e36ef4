"""Test-only fault hooks: hold a trial at a gate, or make a candidate crash its process.

Tests that kill, wait or race must not bet on a trial being "fast enough" (on a loaded
machine it is not). These hooks let them decide when a trial trains, and make a candidate
die the way a segfault in a native kernel or the kernel's OOM killer would end it. They are
switched on only by environment variables that tests set for the processes they start; with
the variables unset, ``before_training`` reads the environment and returns.

``trial.run_trial`` calls ``before_training`` once per trial, after the budget screen and the
reuse lookup, just before the candidate is built and trained:

- ``OPTINAS_TEST_GATE=<folder>``: the trial takes the next ticket (``ticket-<i>``, created
  exclusively, so tickets are unique across processes), records its arrival
  (``arrived-<number>-<pid>``, holding ``i``) and trains only once ``i`` is below the whole
  number in ``<folder>/pass`` (0 while that file is missing). A test that writes ``pass`` = 1
  knows that exactly one trial trains until it writes more.
- ``OPTINAS_TEST_ABORT=<folder>``: the first candidate to arrive becomes the victim (its
  genotype hash goes into ``<folder>/victim``, created exclusively); every trial of that
  genotype, in any process, leaves ``aborted-<pid>`` and calls ``os.abort()``.

The Ray backend forwards these variables to its trial processes (``forwarded_environment``).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

try:
    import resource
except ImportError:  # not on Windows
    resource = None

__all__ = ["GATE_ENV", "ABORT_ENV", "before_training", "forwarded_environment", "arrivals", "open_gate"]

GATE_ENV = "OPTINAS_TEST_GATE"
ABORT_ENV = "OPTINAS_TEST_ABORT"
_POLL_S = 0.03
_GATE_LIMIT_S = 900.0  # a process a test forgot to release gives up instead of waiting forever


def before_training(number: int, genotype_hash: str) -> None:
    """Called once per trial right before it trains; does nothing unless a test hook is set."""
    gate = os.environ.get(GATE_ENV)
    if gate:
        _pass_gate(Path(gate), number)
    abort = os.environ.get(ABORT_ENV)
    if abort:
        _abort_if_victim(Path(abort), genotype_hash)


def forwarded_environment() -> dict[str, str]:
    """The hook variables set in this process, for processes that do not inherit its environment."""
    return {name: os.environ[name] for name in (GATE_ENV, ABORT_ENV) if os.environ.get(name)}


def _create_exclusive(path: Path, text: str) -> bool:
    """Create ``path`` holding ``text`` unless it exists; True when this call created it.

    Written aside, then hard-linked into place: ``link`` fails if the name exists, and the
    file never appears empty to a reader in another process."""
    staging = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    staging.write_text(text)
    try:
        os.link(staging, path)
        return True
    except FileExistsError:
        return False
    finally:
        staging.unlink()


def _allowed(folder: Path) -> int:
    try:
        return int((folder / "pass").read_text().strip() or 0)
    except (FileNotFoundError, ValueError):  # not written yet, or being rewritten right now
        return 0


def _pass_gate(folder: Path, number: int) -> None:
    pid = os.getpid()
    ticket = 0
    while not _create_exclusive(folder / f"ticket-{ticket}", f"{number} {pid}"):
        ticket += 1
    _create_exclusive(folder / f"arrived-{number}-{pid}", str(ticket))
    deadline = time.monotonic() + _GATE_LIMIT_S
    while ticket >= _allowed(folder):
        if time.monotonic() > deadline:
            raise RuntimeError(f"test gate {folder}: ticket {ticket} was not let through in {_GATE_LIMIT_S:.0f} s")
        time.sleep(_POLL_S)


def _abort_if_victim(folder: Path, genotype_hash: str) -> None:
    victim = folder / "victim"
    if _create_exclusive(victim, genotype_hash) or victim.read_text() == genotype_hash:
        _create_exclusive(folder / f"aborted-{os.getpid()}", genotype_hash)  # tests count the crashes
        if resource is not None:  # no core file: the crash is the point, not its memory image
            try:
                resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            except (ValueError, OSError):
                pass
        os.abort()


# Helpers for the tests that drive the hooks --------------------------------------------------


def arrivals(folder: Path) -> list[tuple[int, int, int]]:
    """(ticket, trial number, pid) of every trial that reached the gate, in ticket order."""
    found = []
    for path in Path(folder).glob("arrived-*-*"):
        _, number, pid = path.name.split("-")
        found.append((int(path.read_text()), int(number), int(pid)))  # never seen half-written
    return sorted(found)


def open_gate(folder: Path, tickets: int) -> None:
    """Let the first ``tickets`` tickets of the gate through (atomically: write, then rename)."""
    staging = Path(folder) / f".pass-{os.getpid()}"
    staging.write_text(str(tickets))
    staging.replace(Path(folder) / "pass")
