"""Choosing, per layer, one of two states with a conversion wherever they meet: float32 or 8 bits (`bench tune
--precision int8`; the conversions are quantizes and dequantizes), NCHW or NHWC (`bench tune`; the conversions are
permutes). Both tuners count each layer in both states, then search on this estimate: each layer's count in its
state, plus one conversion of a tensor wherever its producer and a reader differ, at the instructions per value the
counted builds' own conversions took."""

from __future__ import annotations

import math

from neoncc.ir.graph import Graph

FALLBACK_PER_VALUE = 1.5  # instructions per converted value when no counted build has a conversion to measure it on


def values(graph: Graph) -> dict[str, int]:
    """Each tensor's number of values: the input and every node's output."""
    return {t: math.prod(graph.shape_of(t)) for t in [graph.input_name] + [n.output for n in graph.nodes]}


def per_value(graph: Graph, builds: list[dict[str, int]], kind: str) -> float:
    """Instructions per value of the builds' conversions of one kind (their rows '<tensor>.<kind>', e.g.
    'conv1.quantize', 'data.to_nhwc')."""
    sizes = values(graph)
    rows = [(count, sizes[row[:-len(kind) - 1]]) for per_layer in builds for row, count in per_layer.items()
            if row.endswith(f".{kind}") and row[:-len(kind) - 1] in sizes and count]
    return sum(c for c, _ in rows) / sum(v for _, v in rows) if rows else FALLBACK_PER_VALUE


class Costs:
    """The estimate. `home` is the state the network's input arrives in and its output must leave in (float32;
    NCHW), `away` the other (int8; NHWC): per layer its count in each, and a conversion's instructions per value
    each way. A layer in `follows` takes its first input's state (the layout pass's rule for a concatenation). With
    `vector_output_free`, an output of C x 1 x 1 leaves in either state (the same bytes in NCHW and NHWC)."""

    def __init__(self, graph: Graph, home: dict[str, int], away: dict[str, int], to_away: float, to_home: float,
                 follows: frozenset[str] = frozenset(), vector_output_free: bool = False):
        self.graph, self.home, self.away = graph, home, away
        self.to_away, self.to_home = to_away, to_home
        self.follows, self.vector_output_free = follows, vector_output_free
        self.values = values(graph)

    def homes(self, at_home: set[str]) -> dict[str, bool]:
        """Whether each tensor is in the home state when `at_home` (and only those layers, and their followers) run
        in it."""
        home = {self.graph.input_name: True}
        for node in self.graph.nodes:
            home[node.output] = home[node.inputs[0]] if node.name in self.follows else node.name in at_home
        return home

    def total(self, at_home: set[str]) -> float:
        """Estimated instructions of the build that runs `at_home` (and only those layers) in the home state."""
        graph = self.graph
        home = self.homes(at_home)
        total = sum((self.home if home[node.output] else self.away).get(node.name, 0) for node in graph.nodes)
        for tensor, kind in home.items():
            if any(home[c.output] != kind for c in graph.consumers(tensor)):
                total += self.values[tensor] * (self.to_away if kind else self.to_home)
        last = graph.nodes[-1]
        if not home[last.output] and not (self.vector_output_free and tuple(last.shape[1:]) == (1, 1)):
            total += self.values[last.output] * self.to_home
        return total


def choose(costs: Costs, forced_home: set[str], forced_away: set[str]) -> set[str]:
    """The home layers of the cheapest estimate local search finds from every layer in its cheaper state: moves
    flip one layer, or a layer together with one neighbour (two layers cheaper away between home ones pay for their
    conversions only together)."""
    graph = costs.graph
    free = [n.name for n in graph.nodes if n.name not in forced_home | forced_away | costs.follows]
    current = set(forced_home) | {n for n in free if costs.home.get(n, 0) < costs.away.get(n, 0)}
    producer = {n.output: n.name for n in graph.nodes}
    neighbours = {n.name: {producer[t] for t in n.inputs if t in producer} | {c.name for c in graph.consumers(n.output)}
                  for n in graph.nodes}
    moves = [{n} for n in free] + [{n, m} for n in free for m in sorted(neighbours[n]) if m in free and n < m]
    best = costs.total(current)
    while True:
        trial = min(((costs.total(current ^ move), sorted(move)) for move in moves), default=(best, []))
        if trial[0] >= best - 1:
            return current
        best, current = trial[0], current ^ set(trial[1])
