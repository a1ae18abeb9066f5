"""Low-level file helpers shared by every layer (imports nothing from the package but its errors).

Outputs are written atomically: the bytes go to a new temporary file in the target folder
(``mkstemp``: created with ``O_EXCL``, so never through a link an attacker placed there), are
flushed, and replace the target in one ``os.replace``. Symbolic links are refused as targets:
``os.replace`` would replace the link itself, never write through it, but a command that silently
turns a link into a file is as surprising as one that writes through it, so it says so instead.
The checks that a command runs *before* its computation (:func:`check_output_file`,
:func:`prepare_output_dir`) catch an unusable output path before hours of work, not after.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from xai_core.errors import OutputError, ParameterError


def _describe(path: Path, what: str) -> str:
    return f"{what} {str(path)!r}" if what else repr(str(path))


def refuse_symlink(path: str | os.PathLike, *, what: str = "") -> Path:
    """Raise :class:`OutputError` if ``path`` is a symbolic link (dangling or not)."""
    path = Path(path)
    if path.is_symlink():
        raise OutputError(f"{_describe(path, what)} is a symbolic link; refusing to write through or replace it "
                          "(give a path that is not a link)")
    return path


def _check_parents(path: Path, root: Path | None) -> None:
    """Refuse symbolic links among the folders between ``root`` (excluded) and ``path``."""
    if root is None:
        return
    try:
        rel = path.relative_to(root)
    except ValueError:
        raise OutputError(f"{str(path)!r} is not inside the output folder {str(root)!r}") from None
    if ".." in rel.parts:
        raise OutputError(f"{str(path)!r} leaves the output folder {str(root)!r}")
    cur = root
    for part in rel.parts[:-1]:
        cur = cur / part
        refuse_symlink(cur, what="output folder")


def make_dirs(path: str | os.PathLike, *, root: str | os.PathLike | None = None) -> Path:
    """``mkdir -p path``, refusing symbolic links among the folders below ``root``; errors as
    :class:`OutputError` naming the folder."""
    path = Path(path)
    if root is not None:
        _check_parents(path / "x", Path(root))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"cannot create folder {str(path)!r}: a file of that name exists") from None
    except OSError as exc:
        raise OutputError(f"cannot create folder {str(path)!r}: {exc.strerror or exc}") from None
    return path


def _umask() -> int:
    """The process umask, read without changing it (Linux ``/proc``); 0o022 where unknown."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def _file_mode(path: Path) -> int:
    """The permissions a rewritten file keeps, or those ``open()`` would give a new one."""
    try:
        return stat.S_IMODE(os.stat(path, follow_symlinks=False).st_mode)
    except OSError:
        return 0o666 & ~_umask()


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, overwrite: bool = True,
                       root: str | os.PathLike | None = None) -> Path:
    """Write ``data`` to ``path`` so that a reader never sees a half-written file.

    The bytes go to a temporary file in the same folder, are flushed to disk, and replace
    ``path`` in one ``os.replace``; a failed write leaves no partial file behind.

    Parameters
    ----------
    path : the file to write; refused (:class:`OutputError`) if it is a symbolic link or a folder.
    data : bytes
    overwrite : bool
        ``False``: refuse (:class:`ParameterError`) an existing ``path``.
    root : path, optional
        The output folder ``path`` lies in: folders between it and ``path`` that are symbolic links
        are refused too (a link planted inside an output folder never redirects a write).
    """
    path = _prepare_target(path, overwrite=overwrite, root=root)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise OutputError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), _file_mode(path))  # mkstemp's 0600 -> what a plain open() would give
        refuse_symlink(path, what="output file")  # a link that appeared meanwhile
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _prepare_target(path: str | os.PathLike, *, overwrite: bool, root: str | os.PathLike | None) -> Path:
    """The checks every atomic write makes before writing: no link, no folder, no existing file unless
    ``overwrite``; the parent folders made (under ``root`` without links)."""
    path = Path(path)
    refuse_symlink(path, what="output file")
    if path.is_dir():
        raise ParameterError(f"output file {str(path)!r} is a folder; give a file name")
    if not overwrite and os.path.lexists(path):
        raise ParameterError(f"{str(path)!r} exists; pass --force to overwrite it")
    if root is not None:
        make_dirs(path.parent, root=root)
    else:
        _mkdir_parent(path)
    return path


def _mkdir_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"cannot write {str(path)!r}: {str(path.parent)!r} is not a folder") from None
    except OSError as exc:
        raise OutputError(f"cannot create folder {str(path.parent)!r}: {exc.strerror or exc}") from None


def atomic_write_text(path: str | os.PathLike, text: str, **kw) -> Path:
    """:func:`atomic_write_bytes` of UTF-8 text (same keywords)."""
    return atomic_write_bytes(path, text.encode("utf-8"), **kw)


def atomic_write_with(path: str | os.PathLike, writer: Callable[[Path], object], *, overwrite: bool = True,
                      root: str | os.PathLike | None = None) -> Path:
    """Let ``writer(tmp_path)`` write a file (a library's ``save(path)``, ``fig.savefig``), then move it to
    ``path`` atomically. ``tmp_path`` lies in a fresh private folder next to ``path``, so the writer's own
    temporary names cannot meet a planted link either. Same refusals as :func:`atomic_write_bytes`."""
    path = _prepare_target(path, overwrite=overwrite, root=root)
    try:
        tmp_dir = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    except OSError as exc:
        raise OutputError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None
    try:
        tmp = tmp_dir / path.name
        writer(tmp)
        if tmp.is_symlink() or not tmp.is_file():
            raise OutputError(f"writing {str(path)!r} produced no file")
        os.chmod(tmp, _file_mode(path))
        refuse_symlink(path, what="output file")
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return path


def check_output_file(path: str | os.PathLike | None, *, force: bool, what: str = "output file") -> Path | None:
    """Check, before any work, that ``path`` can become an output file; ``None`` passes through.

    Raises :class:`ParameterError` (exit status 2 on the command line) if ``path`` is a folder or
    exists and ``force`` is false, and :class:`OutputError` if it is a symbolic link or its folder
    cannot be created or written to.
    """
    if path is None:
        return None
    path = Path(path)
    refuse_symlink(path, what=what)
    if path.is_dir():
        raise ParameterError(f"{_describe(path, what)} is a folder; give a file name")
    if path.exists() and not force:
        raise ParameterError(f"{_describe(path, what)} exists; pass --force to overwrite it")
    _check_writable_folder(path.parent, what=f"folder of {_describe(path, what)}")
    return path


def _check_writable_folder(folder: Path, *, what: str) -> None:
    """The nearest existing ancestor of ``folder`` must be a folder we may write to."""
    cur = folder if str(folder) else Path(".")
    while not cur.exists() and not cur.is_symlink() and cur != cur.parent:
        cur = cur.parent
    if cur.exists() and not cur.is_dir():
        raise OutputError(f"{what}: {str(cur)!r} is not a folder")
    if cur.is_dir() and not os.access(cur, os.W_OK | os.X_OK):
        raise OutputError(f"{what}: {str(cur)!r} is not writable")


def prepare_output_dir(path: str | os.PathLike, *, what: str = "--out") -> Path:
    """Create an output folder (parents too) or accept an existing one; refuse a symbolic link
    (:class:`OutputError`), an existing non-folder (:class:`ParameterError`) and a folder that
    cannot be created or written to (:class:`OutputError`)."""
    path = Path(path)
    refuse_symlink(path, what=what)
    if path.exists() and not path.is_dir():
        raise ParameterError(f"{_describe(path, what)} exists and is not a folder")
    make_dirs(path)
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"{_describe(path, what)} is not writable")
    return path


def check_new_files(folder: str | os.PathLike, names: Iterable[str], *, force: bool, what: str = "--out") -> None:
    """Before any work: none of ``names`` (paths relative to ``folder``) may be a symbolic link or sit
    below one (:class:`OutputError`), and none may exist unless ``force`` (:class:`ParameterError`,
    naming the first few)."""
    folder = Path(folder)
    existing = []
    for name in names:
        p = folder / name
        _check_parents(p, folder)
        refuse_symlink(p, what="output file")
        if p.is_dir():
            raise ParameterError(f"output file {str(p)!r} is a folder")
        if p.exists():
            existing.append(name)
    if existing and not force:
        shown = ", ".join(existing[:3]) + (f" and {len(existing) - 3} more" if len(existing) > 3 else "")
        raise ParameterError(f"{what} {str(folder)!r} already has {shown}; pass --force to overwrite")


def figure_png(fig, *, dpi: int = 100) -> bytes:
    """A matplotlib figure as PNG bytes (write them with :func:`atomic_write_bytes`)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def npz_bytes(**arrays) -> bytes:
    """``numpy.savez_compressed`` of ``arrays`` as bytes."""
    import io

    import numpy as np

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()
