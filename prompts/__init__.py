"""Prompt templates as data: one YAML file per prompt, one folder per method or agent.

A prompt file holds a ``version`` (recorded in results, so a changed prompt is visible in every
comparison), an optional ``description``, and Jinja2 templates for ``system`` and/or ``user``.
Users override any prompt by putting a file with the same relative name in their own folder
(``load_prompt(name, folder=...)`` or the ``THOUGHTGRAPH_PROMPTS`` environment variable).

Templates render in Jinja2's ``SandboxedEnvironment``: a prompt file from someone else can fill in values,
loop and branch, but cannot reach Python internals (``__class__``, ``__globals__``, ``mro``), call unsafe
methods or import anything. Prompt names are relative names without ``..``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import jinja2.sandbox
import yaml

BUILTIN_FOLDER = Path(__file__).parent
_ENVIRONMENT = jinja2.sandbox.SandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False)


class PromptError(ValueError):
    """A prompt is missing, malformed, or rendered without a value it needs."""


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    version: int | str
    source: Path
    system: str | None = None
    user: str | None = None

    def render(self, **values: Any) -> list[tuple[str, str]]:
        """The (role, text) turns of this prompt with ``values`` filled in."""
        turns = []
        for role in ("system", "user"):
            template = getattr(self, role)
            if template is None:
                continue
            try:
                text = _ENVIRONMENT.from_string(template).render(**values).strip()
            except jinja2.UndefinedError as error:
                raise PromptError(f"prompt {self.name!r} ({self.source}) needs a value: {error}") from None
            except jinja2.sandbox.SecurityError as error:
                raise PromptError(
                    f"prompt {self.name!r} ({self.source}) does something templates may not: {error}"
                ) from None
            except jinja2.TemplateError as error:
                raise PromptError(f"prompt {self.name!r} ({self.source}) is not a valid template: {error}") from None
            turns.append((role, text))
        return turns

    @property
    def tag(self) -> str:
        """``name@version``, a short label for logs and traces (results record ``{name: version}``)."""
        return f"{self.name}@{self.version}"


def load_prompt(name: str, *, folder: str | Path | None = None) -> PromptTemplate:
    """Load ``<method>/<prompt>`` from the user's folder if it has one, else from the built-ins."""
    user_folder = folder or os.environ.get("THOUGHTGRAPH_PROMPTS")
    return _load(name, str(user_folder) if user_folder else None)


@lru_cache(maxsize=256)
def _load(name: str, user_folder: str | None) -> PromptTemplate:
    if not name or Path(name).is_absolute() or ".." in Path(name).parts:
        raise PromptError(f"prompt name {name!r} must be a relative name such as 'cot/solve' (no '..')")
    candidates = [Path(user_folder) / f"{name}.yaml"] if user_folder else []
    candidates.append(BUILTIN_FOLDER / f"{name}.yaml")
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise PromptError(f"no prompt named {name!r} (looked in {', '.join(str(c) for c in candidates)})")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise PromptError(f"prompt file {path} is not valid YAML: {error}") from None
    if not isinstance(data, dict) or "version" not in data or not (data.get("system") or data.get("user")):
        raise PromptError(f"prompt file {path} needs a `version` and a `system` or `user` template")
    return PromptTemplate(name, data["version"], path, data.get("system"), data.get("user"))
