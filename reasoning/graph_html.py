"""A self-contained HTML view of a thought graph: an SVG tree laid out here, plus a details panel.

Nodes are coloured by score (red low, green high, grey unscored), rollback edges are dashed orange
arcs, and the chosen chain is outlined in blue. Clicking a node shows its full text (so does opening the
page at ``#node-ID``). No external
scripts, styles or fonts: the file opens anywhere, offline.

Model text is hostile by assumption, and every string of it is escaped for where it lands: element text and
attributes with ``html.escape``; the graph's JSON, embedded in a data block, with ``<``, ``>`` and ``&`` as
``\\u`` escapes, so no text can close the block or open a comment that swallows the page's scripts
(``<!--<script>``). The page's own scripts and style are pinned by hash in its Content-Security-Policy
(``CONTENT_SECURITY_POLICY``, sent by ``thoughtgraph serve`` and repeated in a meta tag for saved files), so
nothing else on the page can run.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from thoughtgraph.reasoning.graph import ThoughtGraph

X_GAP, Y_GAP, RADIUS, MARGIN = 70, 80, 16, 40

STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; display: flex; height: 100vh; }
#canvas { flex: 3; overflow: auto; border-right: 1px solid #ddd; }
#details { flex: 1; padding: 1em; overflow: auto; white-space: pre-wrap; font-size: 14px; }
.node { cursor: pointer; }
.legend span { display: inline-block; margin-right: 1em; }
"""
ERROR_SCRIPT = """
window.addEventListener("error", e => {
  document.body.dataset.errors = (document.body.dataset.errors || "") + e.message;
});
"""
VIEW_SCRIPT = """
const graph = JSON.parse(document.getElementById("graph-data").textContent);
const byId = new Map(graph.nodes.map(n => [n.id, n]));
function show(id) {
  const n = byId.get(id);
  if (!n) return;
  const facts = ["score", "confidence", "novelty", "answer"].filter(k => n[k] !== null).map(k => k + ": " + n[k]);
  document.getElementById("selected").textContent = (n.id === 0 ? "Question" : "Step " + n.id) +
    (facts.length ? " (" + facts.join(", ") + ")" : "") + "\\n\\n" + n.text;
}
document.querySelectorAll(".node").forEach(el => el.addEventListener("click", () => show(Number(el.dataset.id))));
const linked = /^#node-(\\d+)$/.exec(location.hash);
if (linked) show(Number(linked[1]));
document.body.dataset.rendered = String(document.querySelectorAll(".node").length);
"""


def _source_hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


PAGE_POLICY = (
    f"default-src 'none'; script-src {_source_hash(ERROR_SCRIPT)} {_source_hash(VIEW_SCRIPT)}; "
    f"style-src {_source_hash(STYLE)}; base-uri 'none'; form-action 'none'"
)
CONTENT_SECURITY_POLICY = PAGE_POLICY + "; frame-ancestors 'none'"
"""The policy a server sends with a trace page: only the page's own scripts and style run."""

PAGE = (
    "<!DOCTYPE html>\n"
    '<html lang="en"><head><meta charset="utf-8">'
    f'<meta http-equiv="Content-Security-Policy" content="{PAGE_POLICY}">'
    "<title>{title}</title>\n"
    f"<style>{STYLE.replace('{', '{{').replace('}', '}}')}</style></head>\n<body>\n"
    '<div id="canvas"><svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">{shapes}</svg></div>\n'
    '<div id="details"><h3>{title}</h3>\n'
    '<div class="legend"><span>{thoughts} thoughts</span><span>{rollbacks} rollbacks</span>\n'
    "<span>{experiences} experiences</span></div>\n"
    "<p>Colour: score (red low, green high, grey unscored). Blue: the chosen chain. Dashed orange: rollback.</p>\n"
    '<p id="selected">Click a node to read it.</p></div>\n'
    '<script type="application/json" id="graph-data">{data}</script>\n'
    f"<script>{ERROR_SCRIPT.replace('{', '{{').replace('}', '}}')}</script>\n"
    f"<script>{VIEW_SCRIPT.replace('{', '{{').replace('}', '}}')}</script></body></html>\n"
)


def script_safe_json(value: Any) -> str:
    """JSON that can sit inside a ``<script>`` element whatever its strings hold: ``<``, ``>`` and ``&`` are
    written as ``\\u`` escapes (JSON.parse reads them back), so no ``</script>`` or ``<!--`` can appear."""
    text = json.dumps(value)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _layout(graph: ThoughtGraph) -> dict[int, tuple[float, float]]:
    """Leaves spread left to right in depth-first order; a parent sits above the middle of its children."""
    children: dict[int, list[int]] = {i: [] for i in graph.nodes}
    for edge in graph.edges:
        if edge.kind == "forward":
            children[edge.source].append(edge.target)
    positions: dict[int, tuple[float, float]] = {}
    next_leaf = 0.0
    stack: list[tuple[int, bool]] = [(0, False)]
    while stack:  # iterative post-order, so deep graphs cannot overflow the recursion limit
        node, expanded = stack.pop()
        if not expanded:
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(children[node]))
            continue
        depth = graph.nodes[node].depth
        if children[node]:
            xs = [positions[c][0] for c in children[node]]
            positions[node] = ((min(xs) + max(xs)) / 2, depth)
        else:
            positions[node] = (next_leaf, depth)
            next_leaf += 1
    return {i: (MARGIN + x * X_GAP, MARGIN + y * Y_GAP) for i, (x, y) in positions.items()}


def _colour(score: float | None) -> str:
    if score is None:
        return "#b0b0b0"
    hue = max(0.0, min(1.0, score)) * 120
    return f"hsl({hue:.0f}, 65%, 50%)"


def render_html(graph: ThoughtGraph, title: str) -> str:
    positions = _layout(graph)
    chosen = set(graph.chosen)
    chosen_edges = {(graph.nodes[i].parent, i) for i in chosen}
    width = max(x for x, _ in positions.values()) + MARGIN * 2
    height = max(y for _, y in positions.values()) + MARGIN * 2
    shapes = [
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" '
        'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#e67e22"/></marker></defs>'
    ]
    for edge in graph.edges:
        (x1, y1), (x2, y2) = positions[edge.source], positions[edge.target]
        if edge.kind == "rollback":
            bend = -40 - abs(y1 - y2) / 2
            shapes.append(
                f'<path class="rollback" d="M{x1},{y1} Q{(x1 + x2) / 2 + bend},{(y1 + y2) / 2} {x2},{y2}" '
                'fill="none" stroke="#e67e22" stroke-width="2" stroke-dasharray="6 4" marker-end="url(#arrow)"/>'
            )
        else:
            on_chain = (edge.source, edge.target) in chosen_edges
            colour, stroke = ("#1f5fbf", 4) if on_chain else ("#999", 1.5)
            shapes.append(f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="{colour}" stroke-width="{stroke}"/>')
    for node in graph.nodes.values():
        x, y = positions[node.id]
        ring = ' stroke="#1f5fbf" stroke-width="4"' if node.id in chosen else ' stroke="#333" stroke-width="1"'
        label = "Q" if node.id == 0 else ("A" if node.is_final else str(node.id))
        shapes.append(
            f'<g class="node" data-id="{node.id}"><circle cx="{x}" cy="{y}" r="{RADIUS}" '
            f'fill="{_colour(node.score)}"{ring}/><text x="{x}" y="{y + 4}" text-anchor="middle" '
            f'font-size="11" fill="#fff">{label}</text><title>{html.escape(node.text[:200])}</title></g>'
        )
    return PAGE.format(
        title=html.escape(title),
        width=width,
        height=height,
        shapes="".join(shapes),
        thoughts=len(graph),
        rollbacks=len(graph.rollbacks()),
        experiences=len(graph.experiences),
        data=script_safe_json(graph.to_dict()),
    )
