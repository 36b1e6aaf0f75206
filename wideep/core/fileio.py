"""Files written whole or not at all, with the permissions the user's umask gives."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Callable

from wideep.core.errors import InputError


def current_umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_writable(path: str | Path | None, option: str) -> None:
    """Raise :class:`InputError` on ``option`` at once if ``path`` (None: nothing to write) cannot be written.

    Commands call this before any work, so a bad output path fails in a second and no other output of
    the command is written first.
    """
    if path is None:
        return
    if not str(path):
        raise InputError("needs a file name", option)
    if is_special(path):  # a device or pipe is written into, not replaced: only its own permission counts
        if not os.access(path, os.W_OK):
            raise InputError(f"cannot write {path}: permission denied", option)
        return
    target = Path(os.path.realpath(path))  # through a symbolic link: the file it names is the one replaced
    folder = target.parent
    if target.is_dir():
        raise InputError(f"cannot write {path}: it is a folder", option)
    if not folder.is_dir():
        raise InputError(f"cannot write {path}: no folder {folder}", option)
    if not os.access(folder, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise InputError(f"cannot write {path}: permission denied", option)


def write_atomic(path: str | Path, write: Callable[[Path], None], option: str) -> None:
    """Run ``write(tmp)`` on a temporary file beside ``path``, then move it into place.

    A failure leaves nothing half-written; an unwritable path raises :class:`InputError` naming ``option``.
    A symbolic link keeps pointing where it did: the file it names is replaced. A device, pipe or socket
    (``/dev/stdout``) cannot be replaced and is written straight through.
    """
    if not str(path):
        raise InputError("needs a file name", option)
    if is_special(path):
        try:
            write(Path(path))
        except OSError as exc:
            raise InputError(f"cannot write {path}: {exc.strerror}", option) from None
        return
    target = Path(os.path.realpath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        os.close(fd)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}", option) from None
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; a written file follows the umask
        os.replace(tmp, target)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}", option) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def is_special(path: str | Path) -> bool:
    """Whether ``path`` names (through any links) something that exists and is neither a file nor a folder."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def write_text_atomic(path: str | Path, text: str, option: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`write_atomic`)."""
    write_atomic(path, lambda tmp: tmp.write_text(text), option)
