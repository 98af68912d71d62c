"""Arrays given to tools: inline JSON lists, or a path to a .npy file for anything large."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel, model_validator

from agents.tools.validation import finite_array


class ArrayInput(BaseModel):
    values: list[list[float]] | None = None
    path: str | None = None
    """A .npy file, for arrays too large to pass inline."""

    @model_validator(mode="after")
    def _one_source(self) -> ArrayInput:
        if (self.values is None) == (self.path is None):
            raise ValueError("give exactly one of `values` or `path`")
        if self.path is not None and not Path(self.path).is_file():
            raise ValueError(f"no .npy file at {self.path}")
        if self.values is not None:
            finite_array(self.values, "values", ndim=2)
        return self

    def load(self) -> np.ndarray:
        if self.values is not None:
            return np.asarray(self.values, dtype=np.float64)
        return finite_array(np.load(self.path), f"array in {self.path}", ndim=2)
