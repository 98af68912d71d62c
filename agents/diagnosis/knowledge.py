"""Offline phase: mine incident records into a knowledge base of troubleshooting-guide (TSG) entries, and
retrieve from it.

Mining is deterministic: incidents are grouped by their primary error signature (``signatures.py``); each
group becomes an entry with its hypotheses and their priors (how many incidents each root cause explained),
the verification steps the on-call engineers ran (check, argument template, what each signal means for each
hypothesis, cost, read-only or not, dependencies), the mitigations, and the source incident ids. Where a
backend is given, ``mining.py`` has an LLM write each entry's title and summary (constrained JSON; a reply
that does not parse is counted and the entry keeps its signature as title). Retrieval is BM25 (``rank-bm25``,
Lucene's idf) over the entries (signature and source reports) and over the single incidents, fused by
reciprocal rank with embedding neighbours when an embedder is attached (``embeddings.py``).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rank_bm25 import BM25Okapi

from thoughtgraph.agents.diagnosis.checks import CHECKS
from thoughtgraph.agents.diagnosis.embeddings import Embedder, cosine_ranking, fuse
from thoughtgraph.agents.diagnosis.incidents import Incident
from thoughtgraph.agents.diagnosis.signatures import is_log, primary_signature, signatures

BINDINGS = ("artifact", "required", "clients")
"""Arguments bound per incident at plan time (artifacts by kind, clients from a dependency); a step template
keeps only the others."""
KB_FILE = "kb.json"
KB_VERSION = 1


class LuceneBM25(BM25Okapi):
    """BM25 with Lucene's idf, log(1 + (N - n + 0.5) / (n + 0.5)), which is never negative: rank-bm25's Okapi
    idf goes negative for a term in more than half the documents, and in a small knowledge base (or two
    incidents that share their words) that turns a perfect match into a negative score."""

    def _calc_idf(self, nd: dict[str, int]) -> None:
        for word, freq in nd.items():
            self.idf[word] = math.log(1 + (self.corpus_size - freq + 0.5) / (freq + 0.5))
        self.average_idf = sum(self.idf.values()) / max(len(self.idf), 1)


@dataclass
class StepTemplate:
    check: str
    arguments: dict[str, Any]
    meaning: dict[str, dict[str, str]]
    """signal -> category -> effect (``checks.Effect``)."""
    cost_seconds: float
    read_only: bool
    depends_on: list[str]
    sources: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.check}:{json.dumps(self.arguments, sort_keys=True)}"

    def categories(self) -> set[str]:
        return {category for effects in self.meaning.values() for category in effects}


@dataclass
class GuideEntry:
    id: str
    signature: str
    hypotheses: dict[str, int]
    """category -> number of source incidents it explained (the prior, as counts)."""
    components: dict[str, str]
    steps: list[StepTemplate]
    mitigations: dict[str, str]
    sources: list[str]
    document: str
    """What BM25 indexes: the signature and the source reports."""
    title: str = ""
    summary: str = ""


@dataclass
class PastIncident:
    id: str
    category: str
    component: str
    document: str


@dataclass
class KnowledgeBase:
    entries: list[GuideEntry]
    incidents: list[PastIncident]
    steps: dict[str, list[StepTemplate]]
    """category -> every step the history used to verify it."""
    mitigations: dict[str, str]
    components: dict[str, str]
    summaries_failed: int = 0
    embedder_id: str | None = None
    entry_vectors: list[list[float]] | None = None
    incident_vectors: list[list[float]] | None = None
    _entry_index: BM25Okapi | None = field(default=None, repr=False, init=False)
    _incident_index: BM25Okapi | None = field(default=None, repr=False, init=False)
    _embedder: Embedder | None = field(default=None, repr=False, init=False)
    _query_vectors: dict[str, np.ndarray] = field(default_factory=dict, repr=False, init=False)

    def __post_init__(self) -> None:
        if self.entries:
            self._entry_index = LuceneBM25([tokens(e.document) for e in self.entries])
        if self.incidents:
            self._incident_index = LuceneBM25([tokens(i.document) for i in self.incidents])

    def attach(self, embedder: Embedder) -> None:
        """Retrieve with ``embedder`` too (BM25 and cosine rankings fused); entries and incidents are embedded
        now unless the knowledge base was mined with this embedder."""
        if self.embedder_id != embedder.id or self.entry_vectors is None or self.incident_vectors is None:
            self.entry_vectors = embedder.embed([e.document for e in self.entries]).round(6).tolist()
            self.incident_vectors = embedder.embed([i.document for i in self.incidents]).round(6).tolist()
            self.embedder_id = embedder.id
        self._embedder = embedder
        self._query_vectors.clear()

    def retrieve(self, query: str, k: int = 3) -> list[tuple[GuideEntry, float]]:
        return self._ranked(self._entry_index, self.entries, self.entry_vectors, query, k)

    def similar(self, query: str, k: int = 5) -> list[tuple[PastIncident, float]]:
        return self._ranked(self._incident_index, self.incidents, self.incident_vectors, query, k)

    def _ranked(self, index: BM25Okapi | None, items: list, vectors: Any, query: str, k: int) -> list:
        lexical = _top(index, items, query, len(items))
        if self._embedder is None or not vectors:
            return lexical[:k]
        if query not in self._query_vectors:
            self._query_vectors[query] = self._embedder.embed([query])[0]
        position = {id(item): i for i, item in enumerate(items)}
        semantic = cosine_ranking(np.asarray(vectors), self._query_vectors[query])[: max(4 * k, 20)]
        fused = fuse([position[id(item)] for item, _ in lexical], semantic)
        top = sorted(fused, key=lambda i: (-fused[i], i))[:k]
        return [(items[i], fused[i]) for i in top]

    def priors(self, query: str) -> dict[str, float]:
        """Root-cause priors for a query (see ``priors_of``)."""
        return self.priors_of(self.retrieve(query), self.similar(query))

    def priors_of(
        self, entries: list[tuple[GuideEntry, float]], incidents: list[tuple[PastIncident, float]]
    ) -> dict[str, float]:
        """Root-cause priors from retrieved matches: half from the matching entries' counts, half from the
        similar incidents, each weighted by its retrieval score relative to the best."""
        mass: Counter[str] = Counter()
        for matches, share in ((entries, self._entry_share), (incidents, self._incident_share)):
            best = max((score for _, score in matches), default=0.0)
            if best <= 0:
                continue
            for item, score in matches:
                for category, weight in share(item).items():
                    mass[category] += 0.5 * (score / best) * weight / len(matches)
        total = sum(mass.values())
        return {c: m / total for c, m in mass.most_common()} if total else {}

    @staticmethod
    def _entry_share(entry: GuideEntry) -> dict[str, float]:
        total = sum(entry.hypotheses.values())
        return {c: n / total for c, n in entry.hypotheses.items()}

    @staticmethod
    def _incident_share(incident: PastIncident) -> dict[str, float]:
        return {incident.category: 1.0}

    def to_json(self) -> dict[str, Any]:
        return {
            "version": KB_VERSION,
            "entries": [asdict(e) for e in self.entries],
            "incidents": [asdict(i) for i in self.incidents],
            "steps": {c: [asdict(s) for s in steps] for c, steps in self.steps.items()},
            "mitigations": self.mitigations,
            "components": self.components,
            "summaries_failed": self.summaries_failed,
            "embedder_id": self.embedder_id,
            "entry_vectors": self.entry_vectors,
            "incident_vectors": self.incident_vectors,
        }

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / KB_FILE
        path.write_text(json.dumps(self.to_json(), indent=1))
        return path

    @classmethod
    def load(cls, folder: str | Path) -> KnowledgeBase:
        path = Path(folder)
        path = path / KB_FILE if path.is_dir() else path
        if not path.is_file():
            raise FileNotFoundError(f"no knowledge base at {path}; mine one with `thoughtgraph diagnose mine`")
        try:
            data = json.loads(path.read_text())
            if data.get("version") != KB_VERSION:
                raise ValueError(f"version {data.get('version')!r}, expected {KB_VERSION}")
            return cls(
                entries=[
                    GuideEntry(**{**e, "steps": [StepTemplate(**s) for s in e["steps"]]}) for e in data["entries"]
                ],
                incidents=[PastIncident(**i) for i in data["incidents"]],
                steps={c: [StepTemplate(**s) for s in steps] for c, steps in data["steps"].items()},
                mitigations=data["mitigations"],
                components=data["components"],
                summaries_failed=data.get("summaries_failed", 0),
                embedder_id=data.get("embedder_id"),
                entry_vectors=data.get("entry_vectors"),
                incident_vectors=data.get("incident_vectors"),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{path} is not a knowledge base this version reads: {error}") from None


def _top(index: BM25Okapi | None, items: list, query: str, k: int) -> list:
    if index is None:
        return []
    scores = index.get_scores(tokens(query))
    ranked = sorted(range(len(items)), key=lambda i: (-scores[i], i))[:k]
    return [(items[i], float(scores[i])) for i in ranked if scores[i] > 0]


_TOKEN = re.compile(r"[a-z][a-z0-9_]+")


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def query_text(incident: Incident) -> str:
    """What retrieval is asked with: the report, the logs' error signatures, and the workload facts."""
    found = [s for name, text in incident.artifacts.items() if is_log(name, text) for s in signatures(text, limit=5)]
    facts = " ".join(f"{k} {v}" for k, v in incident.workload.items() if isinstance(v, str | int | float))
    return "\n".join([incident.report, *found, facts])


def step_template(action_tool: str, arguments: dict[str, Any], category: str) -> StepTemplate | None:
    check = CHECKS.get(action_tool)
    if check is None:
        return None
    kept = {k: v for k, v in arguments.items() if k not in BINDINGS}
    meaning = {s: dict(effects) for s, effects in check.meaning.items()}
    if not meaning:  # a log search means what the incidents it came from say it means
        meaning = {"found": {category: "supports"}}
    return StepTemplate(action_tool, kept, meaning, check.cost_seconds, check.read_only, list(check.depends_on))


def _merge(into: dict[str, StepTemplate], step: StepTemplate, source: str) -> None:
    existing = into.setdefault(step.key, step)
    if existing is not step:
        for signal, effects in step.meaning.items():
            for category, effect in effects.items():
                existing.meaning.setdefault(signal, {}).setdefault(category, effect)
    if source not in existing.sources:
        existing.sources.append(source)


GROUPINGS = ("signature", "drain")


def mine(incidents: list[Incident], grouping: str = "signature") -> KnowledgeBase:
    """A knowledge base from incidents with root causes (incidents without one are skipped); deterministic.
    ``grouping``: incidents share an entry when their first error line has the same regex-masked signature
    (``signature``), or the same Drain template over the signatures of all incidents (``drain``,
    ``templates.py``). ``mining.mine_with_model`` adds the LLM's titles and summaries."""
    if grouping not in GROUPINGS:
        raise ValueError(f"grouping must be one of {', '.join(GROUPINGS)}, got {grouping!r}")
    solved = [i for i in incidents if i.root_cause is not None]
    keys = [primary_signature(i.report, i.artifacts) for i in solved]
    if grouping == "drain":
        from thoughtgraph.agents.diagnosis.templates import drain_templates

        template_of = drain_templates(keys)
        keys = [template_of[key] for key in keys]
    groups: dict[str, list[Incident]] = {}
    for key, incident in zip(keys, solved, strict=True):
        groups.setdefault(key, []).append(incident)
    entries: list[GuideEntry] = []
    by_category: dict[str, dict[str, StepTemplate]] = {}
    mitigations: dict[str, Counter[str]] = {}
    components: dict[str, Counter[str]] = {}
    for number, (signature, members) in enumerate(sorted(groups.items())):
        steps: dict[str, StepTemplate] = {}
        for incident in members:
            category = incident.root_cause.category  # type: ignore[union-attr]
            mitigations.setdefault(category, Counter())[incident.mitigation] += 1
            components.setdefault(category, Counter())[incident.root_cause.component or "unknown"] += 1  # type: ignore[union-attr]
            for action in incident.actions:
                template = step_template(action.tool, action.arguments, category)
                if template is not None:
                    _merge(steps, template, incident.id)
                    _merge(
                        by_category.setdefault(category, {}),
                        step_template(action.tool, action.arguments, category),
                        incident.id,
                    )  # type: ignore[arg-type]
        counts = Counter(i.root_cause.category for i in members)  # type: ignore[union-attr]
        entry_components = {
            c: Counter(i.root_cause.component or "unknown" for i in members if i.root_cause.category == c).most_common(
                1
            )[0][0]  # type: ignore[union-attr]
            for c in counts
        }
        entry_mitigations = {
            c: Counter(i.mitigation for i in members if i.root_cause.category == c).most_common(1)[0][0]  # type: ignore[union-attr]
            for c in counts
        }
        entries.append(
            GuideEntry(
                id=f"tsg-{number + 1:03d}",
                signature=signature,
                hypotheses=dict(counts.most_common()),
                components=entry_components,
                steps=list(steps.values()),
                mitigations=entry_mitigations,
                sources=[i.id for i in members],
                document="\n".join([signature, *(i.report for i in members)]),
                title=signature[:80],
            )
        )
    past = [
        PastIncident(i.id, i.root_cause.category, i.root_cause.component or "unknown", query_text(i))  # type: ignore[union-attr]
        for i in solved
    ]
    return KnowledgeBase(
        entries,
        past,
        {c: list(steps.values()) for c, steps in sorted(by_category.items())},
        {c: m.most_common(1)[0][0] for c, m in sorted(mitigations.items())},
        {c: m.most_common(1)[0][0] for c, m in sorted(components.items())},
    )
