"""The HTML trace renders in headless Chromium without script errors and shows every node."""

import re
import shutil
import subprocess

import pytest

from thoughtgraph.reasoning.graph import ThoughtGraph

pytestmark = pytest.mark.integration


def sample_graph() -> ThoughtGraph:
    graph = ThoughtGraph("What is 2 + 3 * 4?")
    a = graph.add_thought(0, "3 * 4 = 12", score=0.9)
    b = graph.add_thought(a.id, "2 + 12 = 14 </script><b>not markup</b>", score=0.8)
    wrong = graph.add_thought(0, "2 + 3 = 5", score=0.2)
    graph.add_thought(wrong.id, "5 * 4 = 20", score=0.1, answer="20")
    final = graph.add_thought(b.id, "The answer is 14.", score=0.95, answer="14")
    graph.add_rollback(wrong.id, 0, bad_step=1)
    graph.chosen = graph.path(final.id)
    return graph


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "Debian's chromium is needed for this test; `make test` installs it (apt-get install chromium)"
    return path


def test_trace_renders_without_script_errors_and_shows_all_nodes(tmp_path):
    graph = sample_graph()
    page = tmp_path / "trace.html"
    page.write_text(graph.to_html("test trace"), encoding="utf-8")
    dom = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=3000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert f'data-rendered="{len(graph.nodes)}"' in body
    assert "data-errors" not in body
    assert len(re.findall(r'class="node"', dom)) == len(graph.nodes)
    assert dom.count('class="rollback"') == 1
    assert "<b>not markup</b>" not in dom.split("graph-data")[0]  # step text is escaped in the SVG


def test_mermaid_and_json_round_trip():
    graph = sample_graph()
    mermaid = graph.to_mermaid()
    assert mermaid.startswith("graph TD") and "-.->|rollback|" in mermaid and "class n1,n2,n5 chosen" in mermaid
    again = ThoughtGraph.from_dict(graph.to_dict())
    assert again.to_dict() == graph.to_dict()
