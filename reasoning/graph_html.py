"""A self-contained HTML view of a thought graph: an SVG tree laid out here, plus a details panel.

Nodes are coloured by score (red low, green high, grey unscored), rollback edges are dashed orange
arcs, and the chosen chain is outlined in blue. Clicking a node shows its full text. No external
scripts, styles or fonts: the file opens anywhere, offline.
"""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reasoning.graph import ThoughtGraph

X_GAP, Y_GAP, RADIUS, MARGIN = 70, 80, 16, 40


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
    data = json.dumps(graph.to_dict()).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 0; display: flex; height: 100vh; }}
#canvas {{ flex: 3; overflow: auto; border-right: 1px solid #ddd; }}
#details {{ flex: 1; padding: 1em; overflow: auto; white-space: pre-wrap; font-size: 14px; }}
.node {{ cursor: pointer; }}
.legend span {{ display: inline-block; margin-right: 1em; }}
</style></head>
<body>
<div id="canvas"><svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">{"".join(shapes)}</svg></div>
<div id="details"><h3>{html.escape(title)}</h3>
<div class="legend"><span>{len(graph)} thoughts</span><span>{len(graph.rollbacks())} rollbacks</span>
<span>{len(graph.experiences)} experiences</span></div>
<p>Colour: score (red low, green high, grey unscored). Blue: the chosen chain. Dashed orange: rollback.</p>
<p id="selected">Click a node to read it.</p></div>
<script type="application/json" id="graph-data">{data}</script>
<script>
window.addEventListener("error", e => {{
  document.body.dataset.errors = (document.body.dataset.errors || "") + e.message;
}});
</script>
<script>
const graph = JSON.parse(document.getElementById("graph-data").textContent);
const byId = new Map(graph.nodes.map(n => [n.id, n]));
document.querySelectorAll(".node").forEach(el => el.addEventListener("click", () => {{
  const n = byId.get(Number(el.dataset.id));
  const facts = ["score", "confidence", "novelty", "answer"].filter(k => n[k] !== null).map(k => k + ": " + n[k]);
  document.getElementById("selected").textContent = (n.id === 0 ? "Question" : "Step " + n.id) +
    (facts.length ? " (" + facts.join(", ") + ")" : "") + "\\n\\n" + n.text;
}}));
document.body.dataset.rendered = String(document.querySelectorAll(".node").length);
</script></body></html>
"""
