"""Near-duplicate files: pairs of clip vectors that are each other's near neighbours and close,
joined into groups (scipy's connected components). Exact search of every clip against every other:
it suits up to some 10^5 files. Similarity alone chains whole classes together; mutual neighbours
do not (benchmarks/results/duplicates.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

THRESHOLD = 0.95  # cosine similarity at or above which two files are near-duplicates
NEIGHBOURS = 2  # two files are linked only when each is among the other's this many most similar


def near_duplicate_groups(
    paths: list[str], vectors: np.ndarray, threshold: float = THRESHOLD, neighbours: int = NEIGHBOURS
) -> list[list[tuple[str, float]]]:
    """paths (n,) and their clip vectors (n, dim), L2-normalised -> groups of near-duplicates.

    Two files are linked when each is among the other's `neighbours` most similar files and their
    cosine similarity is at least `threshold`; a group is what the links connect. Largest group
    first; each member as (path, its best similarity to another member)."""
    import faiss  # here, not above: the command line reads this module's defaults for --help
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(paths)
    if n < 2:
        return []
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    scores, found = exact.search(vectors, min(n, neighbours + 2))  # (n, k): itself, and a tie
    nearest = [set([int(j) for j in row if j != i][:neighbours]) for i, row in enumerate(found)]
    links, best = [], np.full(n, -np.inf)
    for i in range(n):
        for j, score in zip(found[i], scores[i]):
            if j != i and j in nearest[i] and i in nearest[j] and score >= threshold:
                links.append((i, int(j)))
                best[i] = max(best[i], float(score))
    if not links:
        return []
    rows, cols = np.array(links).T
    _, group_of = connected_components(coo_matrix((np.ones(len(links)), (rows, cols)), shape=(n, n)), directed=False)
    groups = [np.flatnonzero(group_of == g) for g in np.unique(group_of[rows])]
    found_groups = [sorted(((paths[i], float(best[i])) for i in members), key=lambda m: m[0]) for members in groups]
    return sorted(found_groups, key=lambda g: (-len(g), g[0][0]))
