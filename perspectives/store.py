"""Writing files atomically: a reader never sees a half-written output, even after Ctrl-C."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import InputError

# The errors that say the destination refuses a write (no permission, read-only, full):
# others from inside a write (a source file gone, an I/O error) are not the target's fault
# and go up as they are.
_REFUSED = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT})

# The process's umask (read by setting it, so once, at import): a folder written through a
# temporary one gets the mode a plain mkdir would have given it.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def _cannot(what: str, path: Path, exc: OSError) -> InputError:
    """The InputError for a write the system refused: ``path``, what failed and why."""
    return InputError(f"cannot {what} ({exc.strerror or exc})", source=str(path))


def _discard(path: Path) -> None:
    """Remove a temporary file or folder; one that cannot go stays (the error at hand is
    the one to report)."""
    with contextlib.suppress(OSError):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def output_dir(path: str | os.PathLike) -> Path:
    """Make the folder ``path`` (and its parents) for outputs; raises InputError if a file
    stands in its way or the folder cannot be made."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InputError("not a folder (outputs are written there)", source=str(p)) from None
    except OSError as exc:
        raise _cannot("make this folder for the outputs", p, exc) from None
    return p


def _plain_file_mode(tmp: Path, target: Path) -> None:
    """Give ``tmp`` the mode a plain write of ``target`` would leave: the file's own if it
    exists, else a new file's under the umask (mkstemp's 0600 was for the temporary name:
    left, every table and report of a run would be readable by its owner alone)."""
    with contextlib.suppress(OSError):  # file systems without modes refuse chmod
        try:
            mode = target.stat().st_mode & 0o7777
        except OSError:
            mode = 0o666 & ~_UMASK
        tmp.chmod(mode)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it into place atomically.

    On any exception (including KeyboardInterrupt) the temporary file is removed and ``path``
    keeps its previous content, if any. Raises InputError naming ``path`` when the system
    refuses the write (no permission, a full disk), also from the caller's writing.
    """
    target = Path(path)
    output_dir(target.parent)
    if target.is_dir():
        raise InputError("a folder is where this file should be written", source=str(target))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise _cannot("write a file in this folder", target, exc) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        _plain_file_mode(tmp_path, target)
        os.replace(tmp_path, target)
    except OSError as exc:
        _discard(tmp_path)
        if exc.errno not in _REFUSED:
            raise
        raise _cannot("write this file", target, exc) from None
    except BaseException:
        _discard(tmp_path)
        raise


def _whole_folder(path: str | os.PathLike) -> Path:
    """``path`` made absolute ("." and ".." have no name to put a new folder beside), for a
    folder to be replaced whole; raises InputError if it is the current folder or holds it."""
    target = Path(os.path.abspath(path))
    try:
        cwd = Path.cwd().resolve()
    except OSError:  # the folder it was started in is gone: nothing to protect there
        return target
    real = target.resolve()  # through symlinks, as the current folder is
    if real == cwd or real in cwd.parents:
        raise InputError(
            "the current folder, or one that contains it, cannot be replaced", source=str(path)
        )
    return target


def replaceable_dir(path: str | os.PathLike, *, is_kind: Callable[[Path], bool], what: str) -> Path:
    """Check that ``path`` may be replaced whole by a new folder of kind ``what``: missing,
    empty, or one that ``is_kind`` says is of that kind already; returns it absolute.

    Raises InputError naming ``path`` for a file, a folder holding other things (they would
    be deleted), or the current folder or one containing it.
    """
    target = _whole_folder(path)
    if target.exists():
        if not target.is_dir():
            raise InputError(f"a file is where {what} should be written", source=str(path))
        if any(target.iterdir()) and not is_kind(target):
            raise InputError(
                f"this folder holds other files, which writing {what} here would delete "
                f"(give a new or empty folder, or {what} to replace)",
                source=str(path),
            )
    return target


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success rename it to ``path``, with the
    mode a new folder there would have.

    An existing ``path`` is replaced only after the new folder is complete. Raises InputError
    naming ``path`` when the system refuses the write, or when ``path`` is the current folder
    or one that contains it.
    """
    target = _whole_folder(path)
    output_dir(target.parent)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    except OSError as exc:
        raise _cannot("write a folder in this folder", target, exc) from None
    try:
        yield tmp
        # mkdtemp's 0700 was for the temporary name only; a setgid bit inherited stays.
        with contextlib.suppress(OSError):  # file systems without modes refuse chmod
            tmp.chmod((tmp.stat().st_mode & 0o7000) | (0o777 & ~_UMASK))
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            try:
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.replace(old, target)  # the previous folder stays where it was
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except OSError as exc:
        _discard(tmp)
        if exc.errno not in _REFUSED:
            raise
        raise _cannot("write this folder", target, exc) from None
    except BaseException:
        _discard(tmp)
        raise


@contextlib.contextmanager
def file_set(
    folder: str | os.PathLike, owned: Iterable[str] = (), last: str | None = "summary.json"
) -> Iterator[Path]:
    """Yield a staging folder inside ``folder`` to write a set of output files into; on
    success they replace ``folder``'s, and the files named in ``owned`` that were not
    written again go (an old figure the new outputs lack). Other files stay (another
    command's). ``last``, if any, is removed first and moved in last, so that its presence
    says the set is whole: an interruption leaves the old set, or a set without ``last``.

    On any exception the staging folder is removed and ``folder`` is left as it was. Raises
    InputError naming ``folder`` when the system refuses the write.
    """
    out = output_dir(folder)
    try:
        staging = Path(tempfile.mkdtemp(prefix=".staging-", suffix=".tmp", dir=out))
    except OSError as exc:
        raise _cannot("write the outputs in this folder", out, exc) from None
    where, what = out, "write the outputs in this folder"
    try:
        yield staging
        new = sorted(p.name for p in staging.iterdir())
        what = "replace this file"
        if last is not None:
            where = out / last
            where.unlink(missing_ok=True)
        for name in set(owned) - set(new):
            _discard(out / name)
        for name in sorted(new, key=lambda n: n == last):
            where = out / name
            _plain_file_mode(staging / name, where)
            os.replace(staging / name, where)
    except OSError as exc:
        if exc.errno not in _REFUSED:
            raise
        raise _cannot(what, where, exc) from None
    except InputError as exc:  # a write refused in the staging folder: name the file's place
        staged = Path(exc.source or "")
        if staged.parent != staging:
            raise
        raise InputError(
            exc.message, source=str(out / staged.name), field=exc.field, value=exc.value
        ) from None
    finally:
        _discard(staging)


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, *, wait: bool = True) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) across processes: the second
    process waits until the first leaves the block, or with ``wait=False`` gets
    BlockingIOError at once. POSIX ``flock``; a no-op where there is none."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    target = Path(path)
    output_dir(target.parent)
    try:
        fh = open(target, "a")
    except OSError as exc:
        raise _cannot("open this lock file", target, exc) from None
    with fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically."""
    write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def write_parquet(path: str | os.PathLike, frame: pd.DataFrame) -> None:
    """Write a DataFrame to Parquet atomically (no index)."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def write_csv(path: str | os.PathLike, frame: pd.DataFrame) -> None:
    """Write a DataFrame to CSV atomically (no index)."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def write_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write an array to ``.npy`` atomically."""
    # Through bytes: numpy's own short write to a full disk raises an OSError without errno.
    buf = io.BytesIO()
    np.save(buf, array)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getbuffer())


def link_or_copy(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Make ``dst`` the same file as ``src``: a hard link (free), or a copy across file systems.
    For files that are replaced, never changed in place (step files, weights). An existing
    ``dst`` is replaced atomically. Returns ``dst``."""
    dst = Path(dst)
    tmp = dst.with_name(f".{dst.name}.link")
    try:
        tmp.unlink(missing_ok=True)
        if dst.exists() and os.path.samefile(src, dst):
            return dst  # already the same file (a resumed agent's own weights)
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except OSError as exc:
        if exc.errno not in _REFUSED:  # the source gone, say: not this folder's fault
            raise
        raise _cannot(f"copy {src} here", dst, exc) from None
    finally:
        # A rename onto another hard link of the same file does nothing and leaves ``tmp``
        # (POSIX rename): it would keep a full copy of the weights alive.
        _discard(tmp)
    return dst
