"""Print the mutation score from mutmut's CI/CD statistics (``make mutation`` runs it).

Score = mutants killed (or timed out) / mutants the tests were run against. Mutants that no selected
test reaches ("no tests") count as surviving: a line nothing tests is not tested.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(path: str) -> None:
    stats = json.loads(Path(path).read_text())
    killed = stats.get("killed", 0) + stats.get("timeout", 0)
    judged = stats.get("total", 0) - stats.get("skipped", 0)
    print(json.dumps(stats))
    print(f"mutation score: {killed}/{judged} = {killed / judged:.1%}" if judged else "no mutants were judged")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "mutants/mutmut-cicd-stats.json")
