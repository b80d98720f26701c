"""Per-layer table of a model: output shape, parameters, MACs and activation bytes, before any pass runs
(so it reads like the YAML), with totals."""

from __future__ import annotations

from math import prod

from neoncc.frontend.yaml_model import load_yaml_model
from neoncc.ir.shapes import macs, param_count


def summary(model: str) -> str:
    graph = load_yaml_model(model)
    rows = [("layer", "op", "output (C,H,W)", "params", "MACs", "activation bytes")]
    rows.append((graph.input_name, "input", "x".join(map(str, graph.input_shape)), "0", "0",
                 f"{4 * prod(graph.input_shape):,}"))
    total_params = total_macs = 0
    for node in graph.nodes:
        params, node_macs = param_count(node), macs(graph, node)
        total_params += params
        total_macs += node_macs
        rows.append((node.name, node.op, "x".join(map(str, node.shape)), f"{params:,}", f"{node_macs:,}",
                     f"{4 * prod(node.shape):,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.append("-" * len(lines[0]))
    lines.append(f"{graph.name}: {total_params:,} parameters ({total_params / 1e6:.3f} M), "
                 f"{total_macs:,} MACs ({total_macs / 1e6:.1f} M) per {'x'.join(map(str, graph.input_shape))} input")
    return "\n".join(lines)

