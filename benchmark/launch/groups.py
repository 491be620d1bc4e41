"""The order cells run in and the groups they are sent to jobs in, following how the data flows.

A cell reads one synthetic set, made once per (dataset, method, distilling backbone, ipc, method seed)
and probed by every evaluating backbone's cell. A method that reads another method's set of the same
coordinates (``Method.requires``, e.g. ``neighbors`` reads ``lgm``'s) runs after it: its cells come
after the cells that make the required set, and go to the same job.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from ..registry import METHODS
from ..suites import Cell

SetKey = tuple[str, str, str, int, int]  # dataset, method, distilling backbone, ipc, method seed


def set_key(cell: Cell) -> SetKey:
    """The synthetic set the cell probes (the artifact store holds one per key and method settings)."""
    return cell.dataset, cell.method, cell.distill_backbone, cell.ipc, cell.method_seed


def required_sets(cell: Cell) -> list[SetKey]:
    """The sets of other methods the cell's method reads (same dataset, backbone, ipc and seed)."""
    return [(cell.dataset, other, cell.distill_backbone, cell.ipc, cell.method_seed)
            for other in METHODS.get(cell.method).requires]


def missing_requirements(cells: Sequence[Cell]) -> dict[str, list[str]]:
    """Method -> the methods it requires that none of ``cells`` runs (their sets must already be stored)."""
    present = {c.method for c in cells}
    missing: dict[str, list[str]] = {}
    for method in dict.fromkeys(c.method for c in cells):
        lacking = [r for r in METHODS.get(method).requires if r not in present]
        if lacking:
            missing[method] = lacking
    return missing


def in_dependency_order(cells: Sequence[Cell]) -> list[Cell]:
    """``cells`` with every cell after the cells that make the sets it requires; otherwise in the given
    order (an order that already satisfies the requirements is returned unchanged)."""
    makers: dict[SetKey, list[int]] = {}
    for i, cell in enumerate(cells):
        makers.setdefault(set_key(cell), []).append(i)
    waits_on = [{j for key in required_sets(cell) for j in makers.get(key, ())} for cell in cells]
    dependents: list[list[int]] = [[] for _ in cells]
    for i, before in enumerate(waits_on):
        for j in before:
            dependents[j].append(i)
    unmet = [len(before) for before in waits_on]
    ready = [i for i, n in enumerate(unmet) if n == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:  # Kahn's algorithm, always taking the earliest ready cell: stable
        i = heapq.heappop(ready)
        order.append(i)
        for k in dependents[i]:
            unmet[k] -= 1
            if unmet[k] == 0:
                heapq.heappush(ready, k)
    if len(order) < len(cells):
        stuck = sorted({cells[i].method for i in range(len(cells)) if unmet[i]})
        raise ValueError(f"methods {', '.join(stuck)} require each other (a cycle in Method.requires); "
                         "remove the cycle from their `requires`")
    return [cells[i] for i in order]


def set_groups(cells: Sequence[Cell]) -> list[list[Cell]]:
    """Cells in groups, one per set to be made with the cells of every backbone that probes it, a set
    and the sets that require it in one group, except that each cell of a ``job_per_cell`` method no
    other cell reads is a group of its own; groups and their cells in dependency order."""
    ordered = in_dependency_order(cells)
    parent: dict[SetKey, SetKey] = {}

    def root(key: SetKey) -> SetKey:
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    keys = {set_key(c) for c in ordered}
    for cell in ordered:
        for needed in required_sets(cell):
            if needed in keys:
                a, b = root(needed), root(set_key(cell))
                if a != b:
                    parent[b] = a
    required = {key for cell in ordered for key in required_sets(cell)}
    groups: dict[tuple[SetKey, str], list[Cell]] = {}
    for cell in ordered:
        alone = METHODS.get(cell.method).job_per_cell and set_key(cell) not in required
        groups.setdefault((root(set_key(cell)), cell.cell_id if alone else ""), []).append(cell)
    return list(groups.values())


def shards(groups: Sequence[Sequence[Cell]], n: int) -> list[list[Cell]]:
    """``groups`` spread over at most ``n`` shards, whole groups only, the largest first onto the
    shard with the fewest cells so far (ties: the lower shard); each shard's groups in their given order."""
    if n < 1:
        raise ValueError(f"the number of jobs must be at least 1, got {n}")
    bins: list[list[int]] = [[] for _ in range(min(n, len(groups)))]
    size = [0] * len(bins)
    for i in sorted(range(len(groups)), key=lambda i: (-len(groups[i]), i)):
        target = min(range(len(bins)), key=lambda b: (size[b], b))
        bins[target].append(i)
        size[target] += len(groups[i])
    return [[c for i in sorted(b) for c in groups[i]] for b in bins if b]
