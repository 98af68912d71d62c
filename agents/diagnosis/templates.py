"""Log templates mined with Drain (He et al., ICWS 2017; the ``drain3`` package), for grouping incidents in the
knowledge base by the template of their first error line instead of its regex-masked signature.

The lines Drain sees are already signatures (``signatures.normalise``: timestamps dropped, paths, addresses, ids
and numbers masked), so Drain only has to find the words that vary between occurrences of one message (a tensor
or parameter name, an op, a file the regexes did not catch) and replace them with ``<*>``. Mining is
deterministic: the lines are fed in the order given, and each is then mapped to the final template of its
cluster. Drain's defaults are kept (similarity threshold 0.4, tree depth 4), no persistence.
"""

from __future__ import annotations

from drain3 import TemplateMiner
from drain3.template_miner_config import TemplateMinerConfig

SIMILARITY = 0.4
DEPTH = 4


def drain_templates(lines: list[str], *, similarity: float = SIMILARITY, depth: int = DEPTH) -> dict[str, str]:
    """Each distinct line mapped to the template of the cluster Drain put it in, after seeing every line."""
    if not 0 < similarity <= 1:
        raise ValueError(f"similarity must be in (0, 1], got {similarity}")
    if depth < 3:
        raise ValueError(f"depth must be at least 3 (Drain's tree has a root and a length level), got {depth}")
    config = TemplateMinerConfig()  # explicit: TemplateMiner() alone would read a drain3.ini from the cwd
    config.drain_sim_th, config.drain_depth = similarity, depth
    config.parametrize_numeric_tokens = True
    miner = TemplateMiner(config=config)
    cluster_of = {line: miner.add_log_message(line)["cluster_id"] for line in lines}
    templates = {cluster.cluster_id: cluster.get_template() for cluster in miner.drain.clusters}
    return {line: templates[cluster] for line, cluster in cluster_of.items()}
