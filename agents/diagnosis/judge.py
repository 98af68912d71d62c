"""The judge's arithmetic: posteriors over the hypotheses (plus ``unknown``, the mass of every cause not on
the table), updated by each verification signal through a likelihood ratio, and the stopping rule.

Likelihood ratios (ours; TSGuard does not publish its scoring): a signal that ``confirms`` a cause multiplies
its odds by 12 when present and 0.15 when looked for and absent; ``supports`` 3 and 0.6; ``weakens`` 1/3 and
1.5; ``refutes`` 0.08 and 2. A hypothesis is confirmed at posterior >= 0.8; all are refuted when ``unknown``
reaches 0.8 or every hypothesis falls below 0.05.
"""

from __future__ import annotations

from typing import Any

UNKNOWN = "unknown"
UNKNOWN_PRIOR = 0.1
LIKELIHOOD: dict[str, tuple[float, float]] = {
    "confirms": (12.0, 0.15),
    "supports": (3.0, 0.6),
    "weakens": (1 / 3, 1.5),
    "refutes": (0.08, 2.0),
}
CONFIRM_AT = 0.8
REFUTED_BELOW = 0.05


def normalised(weights: dict[str, float]) -> dict[str, float]:
    total = sum(weights.values())
    if total <= 0:
        return {k: 1 / len(weights) for k in weights} if weights else {}
    return {k: v / total for k, v in weights.items()}


def initial_posteriors(priors: dict[str, float]) -> dict[str, float]:
    """Hypothesis priors scaled to leave ``UNKNOWN_PRIOR`` for causes not on the table."""
    scaled = {c: (1 - UNKNOWN_PRIOR) * p for c, p in normalised(priors).items()}
    return {**scaled, UNKNOWN: UNKNOWN_PRIOR}


def effects(meaning: dict[str, dict[str, str]], signals: dict[str, bool]) -> list[dict[str, Any]]:
    """What one observation says about each category: a list of {category, signal, present, effect, ratio}."""
    found = []
    for signal, present in signals.items():
        for category, effect in meaning.get(signal, {}).items():
            ratio = LIKELIHOOD[effect][0 if present else 1]
            found.append({"category": category, "signal": signal, "present": present, "effect": effect, "ratio": ratio})
    return found


def update(posteriors: dict[str, float], found: list[dict[str, Any]]) -> dict[str, float]:
    """Bayes with the observation's likelihood ratios (categories not on the table are ignored)."""
    weights = dict(posteriors)
    for item in found:
        if item["category"] in weights:
            weights[item["category"]] *= item["ratio"]
    return normalised(weights)


def verdict(posteriors: dict[str, float]) -> str | None:
    """``confirmed``, ``refuted`` (all hypotheses), or None to go on."""
    hypotheses = {c: p for c, p in posteriors.items() if c != UNKNOWN}
    if hypotheses and max(hypotheses.values()) >= CONFIRM_AT:
        return "confirmed"
    if posteriors.get(UNKNOWN, 0.0) >= CONFIRM_AT or all(p < REFUTED_BELOW for p in hypotheses.values()):
        return "refuted"
    return None


def ranked(posteriors: dict[str, float]) -> list[tuple[str, float]]:
    return sorted(((c, p) for c, p in posteriors.items() if c != UNKNOWN), key=lambda item: (-item[1], item[0]))
