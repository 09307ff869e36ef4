"""The path-like flags of every command, checked before anything is read or written.

A file where a folder belongs, a folder where a file belongs, a missing parent, a read-only
folder or an over-long name is one ``ConfigError`` sentence naming the flag and the path,
rather than an ``OSError`` traceback halfway through a run (or a misleading "does not exist").
"""

from __future__ import annotations

import os
from pathlib import Path

from optinas.search_space.errors import ConfigError, shown

__all__ = ["input_file", "input_folder", "output_folder", "output_file", "is_writable"]

_NAME_BYTES = 255  # the longest file name ext4, XFS, APFS and NTFS accept


def is_writable(folder: Path) -> bool:
    """Whether files can be created in the existing ``folder``.

    The permission bits count too: root passes ``os.access`` on a folder marked read-only
    (r-x for all), and such a mark means "do not write here" to everyone (as
    ``evaluator.datasets.image_folder`` treats a data folder).
    """
    try:
        return os.access(folder, os.W_OK | os.X_OK) and bool(folder.stat().st_mode & 0o222)
    except OSError:
        return False


def input_file(text: str | Path, flag: str) -> Path:
    """The existing, readable file ``text`` names."""
    path = Path(text)
    _check_names(path, flag)
    if path.is_dir():
        raise ConfigError(f"{flag} {shown(str(path))} is a folder; give a file")
    if not path.is_file():
        raise ConfigError(f"{flag} {shown(str(path))} does not exist" if not path.exists()
                          else f"{flag} {shown(str(path))} is not a regular file")
    if not os.access(path, os.R_OK):
        raise ConfigError(f"{flag} {shown(str(path))} cannot be read (permission denied)")
    return path


def input_folder(text: str | Path, flag: str) -> Path:
    """The existing folder ``text`` names."""
    path = Path(text)
    _check_names(path, flag)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {shown(str(path))} is a file; give a folder")
    if not path.is_dir():
        raise ConfigError(f"{flag} {shown(str(path))} does not exist")
    return path


def _check_names(path: Path, flag: str) -> None:
    for part in path.parts:
        if len(part.encode("utf-8", "surrogateescape")) > _NAME_BYTES:
            which = "" if part == str(path) else f": the name {shown(part)}"
            raise ConfigError(f"{flag} {shown(str(path))}{which} is longer than {_NAME_BYTES} bytes, "
                              "more than file systems allow in one name")


def output_folder(text: str | Path, flag: str) -> Path:
    """A folder the command may create or write into: an existing writable folder, or a path
    whose nearest existing ancestor is one. Nothing is created here."""
    path = Path(text)
    _check_names(path, flag)
    _check_ancestor(path, path, flag)
    return path


def _check_ancestor(folder: Path, given: Path, flag: str) -> None:
    """The nearest existing ancestor of ``folder`` (itself included) is a writable folder."""
    existing = folder
    while not existing.exists():
        if existing.is_symlink():
            raise ConfigError(f"{flag} {shown(str(given))}: {shown(str(existing))} is a broken link")
        existing = existing.parent
    if not existing.is_dir():
        where = "" if existing == given else f": {shown(str(existing))}"
        raise ConfigError(f"{flag} {shown(str(given))}{where} is a file, not a folder")
    if not is_writable(existing):
        raise ConfigError(f"{flag} {shown(str(given))}: cannot write in {shown(str(existing.resolve()))} "
                          "(the folder is read-only); choose a writable place")


def output_file(text: str | Path, flag: str, suffix: str | None = None) -> Path:
    """A file the command will (re)write: not a folder, in a creatable, writable folder."""
    path = Path(text)
    _check_names(path, flag)
    if str(text).endswith(("/", os.sep)) or path.is_dir():
        raise ConfigError(f"{flag} {shown(str(text))} is a folder; give a file name"
                          + (f" ending in {suffix}" if suffix else ""))
    if suffix is not None and path.suffix != suffix:
        raise ConfigError(f"{flag} must name a {suffix} file, got {shown(str(path))}")
    if path.exists() and not path.is_file():
        raise ConfigError(f"{flag} {shown(str(path))} exists and is not a regular file")
    _check_ancestor(path.parent, path, flag)
    return path
