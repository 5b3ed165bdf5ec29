"""Where a command may write, and how several files are written all-or-nothing.

The rule every writer follows: a command writes only into what is absent or what it recognisably
wrote itself; anything else is refused with one line, before anything is written, unless the user
passes ``--force``. Symbolic links, folders, device nodes and paths under a regular file are never
written over, whatever the flag: renaming over them would damage something that is not ours.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from annotate.errors import InputError, TargetError

Recognise = Callable[[Path], bool]


def os_reason(exc: OSError) -> str:
    """The plain words for an OSError (permission denied, name too long, …), without a traceback."""
    if exc.errno == errno.ENAMETOOLONG:
        return "file name too long"
    return exc.strerror or type(exc).__name__


def read_bytes(path: str | Path, what: str = "file") -> bytes:
    """A regular file's bytes; anything else (a folder, a device, a FIFO, no permission) is one InputError."""
    path = Path(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise InputError(f"{path}: is {kind}; expected a {what}")
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such {what}") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the {what} ({os_reason(exc)})") from None


def path_kind(path: str | Path) -> str:
    """``"missing"``, ``"folder"``, ``"file"`` or ``"other"``; an unreadable or too long path is an InputError."""
    try:
        info = Path(path).stat()
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({os_reason(exc)})") from None
    if stat.S_ISDIR(info.st_mode):
        return "folder"
    return "file" if stat.S_ISREG(info.st_mode) else "other"


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return path.lstat()
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise TargetError(f"{path}: a part of this path is a file, not a folder") from None
    except OSError as exc:
        raise TargetError(f"{path}: cannot write here ({os_reason(exc)})") from None


def _check_parents(path: Path) -> None:
    for parent in path.parents:
        try:
            info = parent.stat()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise TargetError(f"{path}: cannot write here ({os_reason(exc)})") from None
        if not stat.S_ISDIR(info.st_mode):
            raise TargetError(f"{path}: {parent} is a file, not a folder")
        return


def check_file_target(
    path: str | Path,
    *,
    recognise: Recognise | None = None,
    what: str = "file",
    force: bool = False,
    force_flag: str | None = "--force",
) -> None:
    """Refuse, before anything is written, a target this command must not replace.

    ``recognise`` says whether an existing regular file is one this command wrote (then it may be
    replaced); without it any regular file may be. ``force`` replaces an unrecognised regular file;
    ``force_flag`` is how the user asks for that (None: the command has no such flag).
    """
    path = Path(path)
    _check_parents(path)
    info = _lstat(path)
    if info is None:
        return
    if stat.S_ISLNK(info.st_mode):
        raise TargetError(f"{path}: is a symbolic link; not replacing it (write to its target or elsewhere)")
    if stat.S_ISDIR(info.st_mode):
        raise TargetError(f"{path}: is a folder; give a file name")
    if not stat.S_ISREG(info.st_mode):
        raise TargetError(f"{path}: is not a regular file; not replacing it")
    if recognise is not None and not force and not _recognised(recognise, path):
        hint = f" or pass {force_flag}" if force_flag else ""
        raise TargetError(f"{path}: exists and is not a {what} this command wrote; choose another path{hint}")


def check_folder_target(path: str | Path, *, marker: str | None, what: str, force: bool = False) -> None:
    """Refuse a folder target that is not absent, empty, or marked as ours by the file ``marker``.

    With ``marker`` None only the kind of the target is checked (the caller recognises its content).
    """
    path = Path(path)
    _check_parents(path)
    info = _lstat(path)
    if info is None:
        return
    if stat.S_ISLNK(info.st_mode):
        raise TargetError(f"{path}: is a symbolic link; not replacing it (give the real folder or another path)")
    if not stat.S_ISDIR(info.st_mode):
        raise TargetError(f"{path}: is a file; give a folder")
    if marker is None:
        return
    try:
        empty = not any(path.iterdir())
        ours = (path / marker).is_file()
    except OSError as exc:
        raise TargetError(f"{path}: cannot read this folder ({os_reason(exc)})") from None
    if not (empty or ours or force):
        raise TargetError(
            f"{path}: folder is not empty and holds no {marker}, so it is not a {what} this command wrote; "
            "choose a new folder or pass --force to replace it"
        )


def _recognised(recognise: Recognise, path: Path) -> bool:
    try:
        return bool(recognise(path))
    except Exception:  # whatever stops it being read as ours (a parse error of any library) means it is not
        return False


def _default_mode(path: Path) -> int:
    """Keep an existing file's permissions; a new file gets the usual 0666 less the umask."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_files(files: Sequence[tuple[str | Path, bytes]], mode: int | None = None) -> None:
    """Write every file or none: check all targets, write all temporary copies, then rename each into place.

    A refused target, a full disk or a permission problem shows before any target is replaced.
    ``mode`` sets the permissions (e.g. 0o600 for secrets); by default an existing file keeps its own.
    """
    targets = [Path(path) for path, _ in files]
    for target in targets:
        check_file_target(target)
    staged: list[tuple[Path, Path]] = []
    try:
        for target, (_, data) in zip(targets, files, strict=True):
            try:
                staged.append((_stage(target, data, _default_mode(target) if mode is None else mode), target))
            except OSError as exc:
                raise TargetError(f"{target}: cannot write ({os_reason(exc)}); nothing was replaced") from None
        for temporary, target in staged:
            try:
                os.replace(temporary, target)
            except OSError as exc:
                raise TargetError(f"{target}: cannot replace ({os_reason(exc)})") from None
    finally:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)


def _stage(target: Path, data: bytes, mode: int) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{target.name[:200]}.", suffix=".tmp", dir=target.parent)
    temporary = Path(name)
    try:
        os.fchmod(handle, mode)
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary
