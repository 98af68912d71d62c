"""Hostile thoughts in the HTML trace, opened in real headless Chromium: every node still renders and opens,
no injected script runs, and the page's own scripts report no error. The question alone carried the attack
before (``thoughtgraph solve 'What is 2+2? <!--<script>' --html q.html``)."""

from __future__ import annotations

import html
import re
import subprocess

import pytest

from tests.reasoning.test_trace_html import chromium
from thoughtgraph.reasoning.graph import ThoughtGraph

pytestmark = pytest.mark.integration

ATTACKS = [
    "<!--<script>",
    "</script><script>document.body.dataset.pwned = 'script'</script>",
    "<img src=x onerror=\"document.body.dataset.pwned = 'img'\">",
    "<svg onload=\"document.body.dataset.pwned='svg'\"></svg>",
    "]]><!-- -->&lt;&amp; \u2028\u2029 <\\/script>",
    '"><title></title><script>document.body.dataset.pwned = "title"</script>',
]


def hostile_graph() -> ThoughtGraph:
    graph = ThoughtGraph("What is 2+2? <!--<script>")
    parent = 0
    for attack in ATTACKS:
        parent = graph.add_thought(parent, f"step {attack} done", score=0.5).id
    final = graph.add_thought(parent, "The answer is 4. <!--<script>", score=0.9, answer="4 <!--<script>")
    graph.chosen = graph.path(final.id)
    return graph


def dump(page, tmp_path, fragment: str = "") -> str:
    return subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=3000", "--dump-dom",
         page.as_uri() + fragment],
        capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip


def test_hostile_thoughts_render_every_node_and_run_no_script(tmp_path):
    graph = hostile_graph()
    page = tmp_path / "trace.html"
    page.write_text(graph.to_html("What is 2+2? <!--<script>"), encoding="utf-8")
    dom = dump(page, tmp_path)
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert f'data-rendered="{len(graph.nodes)}"' in body, body
    assert "data-errors" not in body and "data-pwned" not in body
    for node_id in (2, len(graph.nodes) - 1):  # a node opens, hostile text shown as text
        opened = dump(page, tmp_path, f"#node-{node_id}")
        selected = re.search(r'<p id="selected">(.*?)</p>', opened, re.DOTALL).group(1)
        assert html.unescape(selected).endswith(graph.nodes[node_id].text)
        assert "data-pwned" not in re.search(r"<body[^>]*>", opened).group(0)


def test_the_cli_writes_a_safe_page_for_a_hostile_question(tmp_path):
    from tests.security.serving import THOUGHTGRAPH

    script = tmp_path / "script.yaml"
    script.write_text('rules: []\ndefault: "Two and two. <!--<script> The answer is 4."\n')
    page = tmp_path / "q.html"
    subprocess.run([THOUGHTGRAPH, "solve", "What is 2+2? <!--<script>", "--backend", f"scripted:{script}",
                    "--html", str(page), "--quiet"], check=True, capture_output=True, timeout=120)  # fmt: skip
    dom = dump(page, tmp_path, "#node-1")
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert 'data-rendered="' in body and "data-errors" not in body
    assert "Two and two." in html.unescape(re.search(r'<p id="selected">(.*?)</p>', dom, re.DOTALL).group(1))
