"""The study's journal file: Optuna's format and lock, without an fsync on every operation.

Optuna's ``JournalFileBackend`` calls ``os.fsync`` after each appended operation, and a trial
appends about forty (one per sampled parameter and per user attribute): measured on this
project's 2-core machine, 3.3 ms per operation, most of a near-free trial's bookkeeping. The
fsync guards against a power cut or an operating-system crash, not against a killed process:
what a process wrote before ``kill -9`` is in the kernel's page cache and reaches the file
anyway. So appends here are written and flushed under the same lock file as Optuna's, and
the file is fsynced at most once per ``SYNC_INTERVAL_S``: after a power cut a study may lose
its last second of operations (a torn last line is skipped by Optuna's reader), never its
consistency. Reads are Optuna's own ``JournalFileBackend.read_logs``.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Iterator

from optuna.storages.journal import BaseJournalBackend, JournalFileBackend, JournalFileOpenLock

__all__ = ["JournalFile", "SYNC_INTERVAL_S"]

SYNC_INTERVAL_S = 1.0
_clock = time.monotonic  # module-level, so a test can drive it


class JournalFile(BaseJournalBackend):
    """A journal file shared by the processes of one study (``--workers K`` included)."""

    def __init__(self, path: str, lock: JournalFileOpenLock) -> None:
        self._path = path
        self._lock = lock
        self._reader = JournalFileBackend(path, lock_obj=lock)  # creates the file when missing
        self._last_sync = _clock()

    def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
        return self._reader.read_logs(log_number_from)

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        data = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs).encode("utf-8")
        self._lock.acquire()
        try:
            with open(self._path, "ab") as file:
                file.write(data)  # one write of whole lines: readers never see half an operation
                file.flush()
                if _clock() - self._last_sync >= SYNC_INTERVAL_S:
                    os.fsync(file.fileno())
                    self._last_sync = _clock()
        finally:
            self._lock.release()
