"""Where a study's trials live: a journal file in runs/<study>/, or a database URL.

- No URL: ``runs/<study>/study.journal``, Optuna's JournalStorage on a file
  (``journal_file.py``: Optuna's format and lock, fsynced once a second rather than per
  operation; ``journal_storage.py``: open trials found without walking the study). Its appends are serialised by a lock file, so several worker processes on one
  machine (``--workers K``) can share it safely, unlike SQLite under contention. A study created before the journal
  existed (``study.db``) keeps its SQLite file.
- A URL (``postgresql://...``, ``mysql+pymysql://...``): Optuna's RDBStorage with a
  heartbeat, for workers on many machines (``optinas worker``). A worker that dies stops
  beating; the next worker to start a trial fails the stale one and retries it.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Callable

import optuna
import sqlalchemy.exc
from optuna.storages.journal import JournalFileOpenLock
from sqlalchemy.engine import make_url

from optinas.search_space.errors import ConfigError, shown
from optinas.strategies.journal_file import JournalFile
from optinas.strategies.journal_storage import OpenTrialsJournalStorage

__all__ = ["HEARTBEAT_S", "GRACE_S", "open_storage", "describe", "is_database_url", "check_storage_url",
           "DATABASES"]

# Seconds between a running trial's heartbeats, and of silence after which it is stale (four
# missed beats). OPTINAS_HEARTBEAT_S scales both, e.g. for tests that kill a worker.
HEARTBEAT_S = int(os.environ.get("OPTINAS_HEARTBEAT_S", "10"))
GRACE_S = 4 * HEARTBEAT_S
_LOCK_GRACE_S = 30  # a journal lock older than this was left by a killed process


#: Database back ends Optuna's RDBStorage is known to work with (SQLAlchemy's dialect names).
DATABASES = ("sqlite", "postgresql", "mysql", "mariadb")
_EXAMPLE = "sqlite:///runs/study.db or postgresql+psycopg2://user@host/db"


def is_database_url(url: str | None) -> bool:
    return bool(url) and "://" in str(url)


def check_storage_url(url: str, flag: str = "--storage", existing: bool = False) -> None:
    """Refuse a ``--storage`` that cannot work, before anything is written anywhere.

    The URL must parse, name one of ``DATABASES`` and a driver that is installed; an SQLite
    file needs an existing, writable folder, and with ``existing`` (a worker or a report,
    which join a study) the file itself, so that a typo does not create an empty database.
    Whether a server answers is learnt when the storage is opened (``open_storage``).
    """
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(f"{flag} must be a database URL such as {_EXAMPLE}; got {shown(url)} "
                          "(leave it out to keep the study in a journal file under runs/)")
    try:
        parsed = make_url(url)
        dialect = parsed.get_dialect()
    except (sqlalchemy.exc.ArgumentError, sqlalchemy.exc.NoSuchModuleError, ValueError):
        scheme = url.split("://", 1)[0]
        raise ConfigError(f"{flag} {shown(describe(None, url))}: unknown database {shown(scheme)}; "
                          f"use one of {', '.join(DATABASES)}, e.g. {_EXAMPLE}") from None
    if parsed.get_backend_name() not in DATABASES:
        raise ConfigError(f"{flag} {shown(describe(None, url))}: {parsed.get_backend_name()!r} is not a database "
                          f"Optuna supports; use one of {', '.join(DATABASES)}")
    try:
        dialect.import_dbapi()
    except ImportError as error:
        raise ConfigError(f"{flag}: the {parsed.get_backend_name()} driver {parsed.get_driver_name()!r} is not "
                          f"installed ({error}); install it, or name an installed one as in "
                          "postgresql+psycopg2://") from None
    if parsed.get_backend_name() == "sqlite":
        _check_sqlite_file(parsed.database, flag, existing)


def _check_sqlite_file(database: str | None, flag: str, existing: bool) -> None:
    if not database or database == ":memory:" or database.startswith("file:"):
        raise ConfigError(f"{flag}: an in-memory SQLite database vanishes with the process; give a "
                          "file, e.g. sqlite:///runs/study.db")
    path = Path(database)
    if path.is_dir():
        raise ConfigError(f"{flag}: the SQLite file {shown(database)} is a folder")
    if existing and not path.is_file():
        raise ConfigError(f"{flag}: no SQLite database at {shown(database)}; create the study there first "
                          "with optinas search --storage URL")
    if not path.parent.is_dir():
        raise ConfigError(f"{flag}: the folder of the SQLite file {shown(database)} does not exist")
    writable = os.access(path.parent, os.W_OK) and bool(path.parent.stat().st_mode & 0o222)
    if not writable:  # SQLite writes a journal beside the file, even to read a locked database
        raise ConfigError(f"{flag}: cannot write beside the SQLite file {shown(database)} (read-only folder)")


def open_storage(run_dir: Path, url: str | None = None,
                 on_stale: Callable | None = None):
    """The storage of the study in ``run_dir``, or at ``url`` when one is given.

    ``on_stale(study, frozen_trial)`` is called for each trial the heartbeat fails (database
    storages only); the driver uses it to retry the trial.
    """

    if is_database_url(url):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats: stable in use
                return optuna.storages.RDBStorage(
                    url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                    heartbeat_stale_trial_callback=on_stale,
                    engine_kwargs={"pool_pre_ping": True} if not url.startswith("sqlite") else None)
        except (sqlalchemy.exc.SQLAlchemyError, ImportError) as error:  # no server or driver, not a database
            cause = getattr(error, "orig", None) or error
            first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
            raise ConfigError(f"cannot open the study database {describe(run_dir, url)}: {first}") from None
    legacy = run_dir / "study.db"
    if legacy.exists():
        return optuna.storages.RDBStorage(f"sqlite:///{legacy.resolve()}")

    path = str((run_dir / "study.journal").resolve())
    return OpenTrialsJournalStorage(JournalFile(path, JournalFileOpenLock(path, grace_period=_LOCK_GRACE_S)))


def describe(run_dir: Path | None, url: str | None = None) -> str:
    """Where the trials are, for messages and config.toml (a URL's password is hidden)."""
    if is_database_url(url):
        return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)
    legacy = run_dir / "study.db"
    return str(legacy if legacy.exists() else run_dir / "study.journal")
