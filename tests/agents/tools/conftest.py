"""Tool tests write their tensor files under ``tmp_path``: that is their attachments folder (outside it, a file
argument is refused, as ``tests/security/test_attachments.py`` shows)."""

from __future__ import annotations

import pytest

from thoughtgraph.agents.tools.arrays import attachments_root


@pytest.fixture(autouse=True)
def _files_under_tmp_path(tmp_path):
    with attachments_root(tmp_path):
        yield
