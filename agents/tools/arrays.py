"""Arrays given to tools: inline JSON lists, or a path to a file for anything large.

Files are data-only formats: ``.npy`` (one array, ``allow_pickle=False``), ``.npz``, ``.safetensors``,
``.json`` (an array, or an object of named arrays) and ``.csv`` (a numeric table; a header row names
nothing and is skipped); ``name#key`` picks one tensor of a multi-tensor file. PyTorch files
(``.pt``/``.pth``/``.bin``) are pickles and TorchScript archives are programs: both can run code when
loaded, so neither is read (convert with ``safetensors.torch.save_file``).

Where files may be: under the *attachments folder* (``attachments_root``: the incident's own folder, or
``--attachments-dir``; the working directory when none is set). A relative path is taken from there; an
absolute path, ``..`` or a symbolic link that leads outside it is refused, so a path written into an
incident, or by a model, cannot reach any other file the user can read. Files over ``MAX_FILE_BYTES`` are
refused before they are read, and each file is read once per call.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import stat
import zipfile
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import BaseModel, Field, model_validator

from thoughtgraph.agents.tools.validation import MAX_ELEMENTS, MAX_MAGNITUDE, InputError, finite_array

MAX_FILE_BYTES = 1 << 30
TENSOR_SUFFIXES = (".npy", ".npz", ".safetensors", ".json", ".csv")
CODE_SUFFIXES = (".pt", ".pth", ".bin", ".ts", ".torchscript", ".pkl", ".pickle", ".ckpt")
"""Formats that can run code when loaded (pickles, TorchScript): never read."""

_ROOT: ContextVar[Path | None] = ContextVar("attachments_root", default=None)


@contextlib.contextmanager
def attachments_root(folder: str | Path) -> Iterator[Path]:
    """Within this block, file arguments resolve under ``folder`` and may not leave it."""
    root = Path(folder).expanduser().resolve()
    if not root.is_dir():
        raise InputError(f"the attachments folder {folder} is not a folder")
    token = _ROOT.set(root)
    try:
        yield root
    finally:
        _ROOT.reset(token)


def current_root() -> Path:
    return _ROOT.get() or Path.cwd().resolve()


def _source(path: str) -> tuple[Path, str | None]:
    file, _, key = path.partition("#")
    return Path(file), key or None


def resolve_attachment(path: str | Path, name: str) -> Path:
    """The real file a path argument names, inside the attachments folder; InputError when it is missing or
    when the path (absolute, ``..``, or through a symbolic link) leads outside the folder."""
    root = current_root()
    given = Path(path).expanduser()
    candidate = given if given.is_absolute() else root / given
    try:
        resolved = candidate.resolve(strict=True)
    except (FileNotFoundError, NotADirectoryError):
        raise InputError(f"{name}: no file at {given} (paths are read from {root})") from None
    except (OSError, RuntimeError) as error:  # a symlink loop
        raise InputError(f"{name}: cannot resolve {given} ({error})") from None
    if not resolved.is_relative_to(root):
        raise InputError(f"{name}: {given} is outside the attachments folder {root}; files are read only from "
                         "there (absolute paths, '..' and links may not leave it)")  # fmt: skip
    return resolved


def read_attachment(path: str | Path, name: str, *, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of an attachment, opened without following a link swapped in after it was resolved."""
    resolved = resolve_attachment(path, name)
    try:
        handle = os.open(resolved, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as error:
        raise InputError(f"{name}: cannot open {path} ({error.strerror or error})") from None
    with os.fdopen(handle, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise InputError(f"{name}: {path} is not a plain file")
        if info.st_size > limit:
            raise InputError(f"{name}: {path} is {info.st_size:,} bytes; the limit is {limit:,}")
        data = file.read(limit + 1)
    if len(data) > limit:  # it grew after the check
        raise InputError(f"{name}: {path} is over {limit:,} bytes")
    return data


def _data_format(file: Path, name: str, suffixes: tuple[str, ...]) -> str:
    """The file's suffix, when it is a data-only format this argument takes."""
    suffix = file.suffix.lower()
    if suffix in CODE_SUFFIXES:
        raise InputError(f"{name}: {file.name!r} is a PyTorch pickle or TorchScript file, which can run code when "
                         "loaded; save the tensors as .safetensors (safetensors.torch.save_file) or .npy")  # fmt: skip
    if suffix not in suffixes:
        raise InputError(f"{name}: {file.name!r} is not one of {', '.join(suffixes)}")
    return suffix


def check_path(path: str, name: str, suffixes: tuple[str, ...] = TENSOR_SUFFIXES) -> None:
    """Cheap checks of a file argument when it is validated (no reading): a data-only format, inside the
    attachments folder, not too large. ``read_attachment`` checks the opened file again when it is read."""
    file, _ = _source(path)
    _data_format(file, name, suffixes)
    resolved = resolve_attachment(file, name)
    if not resolved.is_file():
        raise InputError(f"{name}: {file} is not a file")
    if resolved.stat().st_size > MAX_FILE_BYTES:
        raise InputError(f"{name}: {file} is {resolved.stat().st_size:,} bytes; the limit is {MAX_FILE_BYTES:,}")


def _json_tensors(data: bytes) -> dict[str, np.ndarray]:
    value = json.loads(data)
    named = value if isinstance(value, dict) else {"array": value}
    return {str(k): np.asarray(v, dtype=np.float64) for k, v in named.items()}


def _csv_tensor(data: bytes) -> dict[str, np.ndarray]:
    rows = [row for row in csv.reader(io.StringIO(data.decode("utf-8"))) if row]
    if rows and not all(_is_number(cell) for cell in rows[0]):
        rows = rows[1:]  # a header
    return {"array": np.asarray([[float(cell) for cell in row] for row in rows], dtype=np.float64)}


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def load_tensors(path: str, name: str = "path") -> dict[str, np.ndarray]:
    """Every tensor in a file, by name, as float64 arrays (not yet checked for finiteness)."""
    file, _ = _source(path)
    suffix = _data_format(file, name, TENSOR_SUFFIXES)
    data = read_attachment(file, name)
    try:
        if suffix == ".npy":
            return {"array": np.load(io.BytesIO(data), allow_pickle=False)}
        if suffix == ".npz":
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                return {k: archive[k] for k in archive.files}
        if suffix == ".json":
            return _json_tensors(data)
        if suffix == ".csv":
            return _csv_tensor(data)
        from safetensors.numpy import load

        return load(data)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, UnicodeDecodeError) as error:
        raise InputError(f"{name}: cannot read {file} as {suffix} ({error})") from None
    except Exception as error:
        raise InputError(f"{name}: cannot read {file} as {suffix} ({error})") from None


def load_array(path: str, name: str = "path", *, ndim: int | None = None, max_abs: float | None = None) -> np.ndarray:
    """One array from a file: the only tensor it holds, or the one named after ``#``."""
    file, key = _source(path)
    tensors = load_tensors(path, name)
    if key is None and len(tensors) != 1:
        raise InputError(f"{name}: {file.name} holds {len(tensors)} tensors; pick one with {file.name}#NAME "
                         f"(names: {', '.join(sorted(tensors)[:10])})")  # fmt: skip
    if key is not None and key not in tensors:
        raise InputError(f"{name}: {file.name} has no tensor {key!r} (names: {', '.join(sorted(tensors)[:10])})")
    array = tensors[key] if key is not None else next(iter(tensors.values()))
    return finite_array(array, f"{name} ({path})", ndim=ndim, max_abs=max_abs)


class ArrayInput(BaseModel):
    """A matrix: inline ``values`` or a ``path`` to a .npy/.npz/.safetensors/.json/.csv file (``file#name``).
    Values are bounded by ``MAX_MAGNITUDE`` in magnitude (products and squares stay finite)."""

    values: list[list[float]] | None = Field(None, max_length=4096)
    path: str | None = Field(
        None,
        max_length=4096,
        description="a tensor file (.npy/.npz/.safetensors/.json/.csv); file#name picks one tensor",
    )

    @model_validator(mode="after")
    def _one_source(self) -> ArrayInput:
        if (self.values is None) == (self.path is None):
            raise InputError("give exactly one of `values` or `path`")
        if self.path is not None:
            check_path(self.path, "path")
        if self.values is not None:
            finite_array(self.values, "values", ndim=2, max_abs=MAX_MAGNITUDE)
        return self

    def load(self) -> np.ndarray:
        if self.values is not None:
            return np.asarray(self.values, dtype=np.float64)
        return load_array(self.path or "", "path", ndim=2, max_abs=MAX_MAGNITUDE)


FilePath = Annotated[
    str, Field(max_length=4096, description="a .npy/.npz/.safetensors/.json/.csv file; file#name picks one")
]
Matrix = Annotated[list[list[float]], Field(max_length=1_000_000)] | FilePath
"""A 2-D array argument: inline rows, or a tensor file path (``file#name`` picks one tensor)."""
Vector = Annotated[list[float], Field(max_length=MAX_ELEMENTS)] | FilePath
"""A 1-D array argument: inline values, or a tensor file path."""


def check_array_argument(value: object, name: str, ndim: int, max_abs: float | None = None) -> None:
    """Validator-time checks of an array argument: inline values are checked in full (finite, shape), a
    path only for existence, suffix and size (it is read once, when the tool runs)."""
    if isinstance(value, str):
        check_path(value, name)
    else:
        finite_array(value, name, ndim=ndim, max_abs=max_abs)


def as_array(value: object, name: str, ndim: int, max_abs: float | None = None) -> np.ndarray:
    """The array an argument stands for: inline values as float64, or the tensor read from its file."""
    if isinstance(value, str):
        return load_array(value, name, ndim=ndim, max_abs=max_abs)
    return finite_array(value, name, ndim=ndim, max_abs=max_abs)


__all__ = ["MAX_ELEMENTS", "ArrayInput", "Matrix", "Vector", "as_array", "attachments_root", "check_array_argument",
           "check_path", "load_array", "load_tensors", "read_attachment", "resolve_attachment"]  # fmt: skip
