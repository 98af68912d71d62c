"""Arrays given to tools: inline JSON lists, or a path to a file for anything large.

Files: ``.npy`` (one array), ``.npz``, ``.safetensors`` and ``.pt``/``.pth``/``.bin`` (PyTorch state
dicts) hold named tensors; ``name#key`` picks one tensor of a multi-tensor file. Loading never runs
code from the file: numpy with ``allow_pickle=False``, safetensors (a plain format), torch with
``weights_only=True``. Files over ``MAX_FILE_BYTES`` are refused before they are read, and each file
is read once per call.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import BaseModel, Field, model_validator

from agents.tools.validation import MAX_ELEMENTS, MAX_MAGNITUDE, InputError, finite_array

MAX_FILE_BYTES = 1 << 30
TENSOR_SUFFIXES = (".npy", ".npz", ".safetensors", ".pt", ".pth", ".bin")


def _source(path: str) -> tuple[Path, str | None]:
    file, _, key = path.partition("#")
    return Path(file), key or None


def check_path(path: str, name: str, suffixes: tuple[str, ...] = TENSOR_SUFFIXES) -> None:
    """Cheap checks of a file argument (no reading): it exists, has a known suffix, is not too large."""
    file, _ = _source(path)
    if file.suffix.lower() not in suffixes:
        raise InputError(f"{name}: {file.name!r} is not one of {', '.join(suffixes)}")
    if not file.is_file():
        raise InputError(f"{name}: no file at {file}")
    if file.stat().st_size > MAX_FILE_BYTES:
        raise InputError(f"{name}: {file} is {file.stat().st_size:,} bytes; the limit is {MAX_FILE_BYTES:,}")


def _torch_state(file: Path) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch ships with the dev install
        raise InputError(f"reading {file.name} needs PyTorch (pip install torch)") from None
    try:
        loaded = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:
        raise InputError(f"{file} is not a PyTorch state dict that loads with weights_only=True ({error})") from None
    if isinstance(loaded, torch.Tensor):
        loaded = {"tensor": loaded}
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]  # Lightning-style checkpoints
    if not isinstance(loaded, dict):
        raise InputError(f"{file} holds a {type(loaded).__name__}, not a state dict of tensors")
    tensors = {str(k): v for k, v in loaded.items() if isinstance(v, torch.Tensor)}
    return {k: v.detach().to(torch.float64).numpy() for k, v in tensors.items()}


def load_tensors(path: str, name: str = "path") -> dict[str, np.ndarray]:
    """Every tensor in a file, by name, as float64 arrays (not yet checked for finiteness)."""
    check_path(path, name)
    file, _ = _source(path)
    suffix = file.suffix.lower()
    try:
        if suffix == ".npy":
            return {"array": np.load(file, allow_pickle=False)}
        if suffix == ".npz":
            with np.load(file, allow_pickle=False) as archive:
                return {k: archive[k] for k in archive.files}
        if suffix == ".safetensors":
            from safetensors.numpy import load_file

            return load_file(str(file))
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
        raise InputError(f"{name}: cannot read {file} as {suffix} ({error})") from None
    except Exception as error:
        raise InputError(f"{name}: cannot read {file} as {suffix} ({error})") from None
    return _torch_state(file)


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
    """A matrix: inline ``values`` or a ``path`` to a .npy/.npz/.safetensors/.pt file (``file#name``).
    Values are bounded by ``MAX_MAGNITUDE`` in magnitude (products and squares stay finite)."""

    values: list[list[float]] | None = Field(None, max_length=4096)
    path: str | None = Field(None, max_length=4096, description="a tensor file; file#name picks one tensor")

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


FilePath = Annotated[str, Field(max_length=4096, description="a .npy/.npz/.safetensors/.pt file; file#name picks one")]
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


__all__ = ["MAX_ELEMENTS", "ArrayInput", "Matrix", "Vector", "as_array", "check_array_argument", "check_path",
           "load_array", "load_tensors"]  # fmt: skip
