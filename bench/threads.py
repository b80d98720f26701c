"""Thread scaling counted, not timed: the critical path of a 1-4 thread inference in guest instructions.

A 2-core host cannot show 4-thread scaling in wall time, but the instruction counter counts per guest thread
(vCPU) and snapshots every thread's count at each layer marker. The threads of ACL's scheduler meet at the end of
every layer (CPPScheduler::run_workloads waits for all of them), so a layer lasts as long as its busiest thread:
its critical path is the largest per-thread count in its interval, the network's is the sum over layers. Idle
workers block in a futex (no instructions), so a layer that does not split shows one busy thread.

    python3 -m bench threads --model squeezenet_v1_1 [--threads 1 2 3 4]

writes results/<stamp>-threads/threads.md and threads.json; `python3 -m bench report` has the same table per model.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from bench.engine import count_engine

THREADS = (1, 2, 3, 4)
POOR = 0.6   # a layer whose critical path at the most threads is above this share of its 1-thread count splits poorly


def scaling(binary: Path, input_path: Path, threads=THREADS, target: str | None = None, log=print) -> dict:
    """Counts one inference of the engine at each thread count: per count, the critical path, all threads'
    instructions, how many threads did work, per layer the busiest thread and every thread's instructions, and
    how far the output is from the fewest threads' (the same computation, split differently)."""
    runs = {}
    for n in threads:
        log(f"{Path(binary).name}: counting per thread, {n} thread(s)")
        counted = count_engine(binary, input_path, threads=n, target=target)
        runs[n] = counted
    base = runs[min(threads)]
    result = {"threads": {}, "layers": list(base.per_layer)}
    for n, c in runs.items():
        result["threads"][n] = {
            "critical_path": c.critical_path,
            "all_threads": c.per_inference,
            "working_threads": max((sum(1 for x in t if x) for t in c.per_layer_threads.values()), default=1),
            "per_layer_critical": {name: max(t, default=c.per_layer[name]) for name, t in c.per_layer_threads.items()},
            "per_layer_threads": c.per_layer_threads,
            "max_abs_diff_to_1_thread": float(abs(c.output - base.output).max()),
        }
    return result


def _ratio(result: dict, n: int) -> float:
    one = result["threads"][min(result["threads"], key=int)]["critical_path"]
    return result["threads"][n]["critical_path"] / one


def poor_layers(result: dict, limit: int = 8) -> list[dict]:
    """Layers whose critical path at the most threads stays above POOR of their 1-thread count, by the
    instructions they add to the network's critical path beyond an even split (largest first)."""
    counts = sorted(result["threads"], key=int)
    one, most = result["threads"][counts[0]], result["threads"][counts[-1]]
    n = int(counts[-1])
    rows = []
    for name in result["layers"]:
        single = one["per_layer_critical"][name]
        critical = most["per_layer_critical"][name]
        if single and critical > POOR * single:
            busy = sum(1 for x in most["per_layer_threads"][name] if x)
            rows.append({"layer": name, "one_thread": single, "critical": critical, "ratio": critical / single,
                         "working_threads": busy, "excess": critical - single / n})
    rows.sort(key=lambda r: -r["excess"])
    return rows[:limit]


def markdown(result: dict, model: str) -> list[str]:
    counts = sorted(result["threads"], key=int)
    n = int(counts[-1])
    lines = ["| threads | critical path (M instructions) | vs 1 thread | all threads (M) | threading overhead "
             "| threads that worked |", "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    base_all = result["threads"][counts[0]]["all_threads"]
    for t in counts:
        r = result["threads"][t]
        lines.append(f"| {t} | {r['critical_path'] / 1e6:.2f} | {_ratio(result, t):.3f}x | {r['all_threads'] / 1e6:.2f} "
                     f"| {100 * (r['all_threads'] - base_all) / base_all:+.2f} % | {r['working_threads']} |")
    most = result["threads"][counts[-1]]
    lines += ["", f"Critical path = per layer, the busiest guest thread's instructions (the threads meet at every "
                  f"layer's end), summed over the layers; an even split of the 1-thread count over {n} threads would "
                  f"be {1 / n:.3f}x. Per layer at {n} threads, the largest distance from an even split:", "",
              "| layer | 1 thread (M) | busiest of " + str(n) + " (M) | ratio | threads that worked |",
              "| --- | ---: | ---: | ---: | ---: |"]
    one = result["threads"][counts[0]]
    worst = sorted(result["layers"], key=lambda name: -(most["per_layer_critical"][name]
                                                          - one["per_layer_critical"][name] / n))[:8]
    for name in worst:
        single, critical = one["per_layer_critical"][name], most["per_layer_critical"][name]
        busy = sum(1 for x in most["per_layer_threads"][name] if x)
        lines.append(f"| {name} | {single / 1e6:.3f} | {critical / 1e6:.3f} | "
                     f"{critical / single if single else 0:.2f} | {busy} |")
    poor = poor_layers(result)
    lines += ["", ("Layers that split poorly (busiest thread above "
                   f"{POOR:.0%} of the 1-thread count at {n} threads): "
                   + ", ".join(f"{r['layer']} ({r['critical'] / 1e6:.3f} M, {r['working_threads']} thread(s))"
                               for r in poor)) if poor else
              f"Every layer splits: none keeps more than {POOR:.0%} of its 1-thread count on one thread."]
    return lines


def threads_command(models: list[str], threads=THREADS, target: str | None = None, log=print) -> Path:
    """`python3 -m bench threads`: builds each model (seeded weights), counts it per thread on the chelsea photo,
    checks that every thread count gives the 1-thread output (1e-5), writes results/<stamp>-threads/."""
    import shutil

    import numpy as np
    import skimage.data
    from PIL import Image

    import bench
    from bench.engine import build
    from neoncc import PROJECT_ROOT
    from neoncc.errors import UserError
    from neoncc.frontend.yaml_model import load_yaml_model
    from neoncc.tools.preprocess import preprocess
    from neoncc.weights.pack import random_weights

    if not threads or min(threads) < 1:
        raise UserError(f"--threads: counts of at least 1, not {list(threads)}")
    paths = [bench.model_path(m) for m in models]
    out = PROJECT_ROOT / "results" / (time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-threads")
    work = out / "work"
    work.mkdir(parents=True)
    doc = [f"# Thread scaling in guest instructions ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", "",
           "Generated by `python3 -m bench threads`; one inference per thread count, counted per guest thread "
           "under qemu-user. Seeded random weights, scikit-image's chelsea photo.", ""]
    results = {}
    for model in paths:
        graph = load_yaml_model(model)
        name = model.stem
        np.savez(work / f"{name}.npz", **random_weights(graph, 0))
        photo = preprocess(Image.fromarray(skimage.data.chelsea()), graph.meta["preprocess"], graph.input_shape)
        input_path = work / f"{name}.input.f32"
        photo.astype("<f4").tofile(input_path)
        log(f"{name}: building")
        binary = build(model, work / "build", work / f"{name}.npz", target=target)
        result = scaling(binary, input_path, sorted(set(threads)), target, log)
        for t, r in result["threads"].items():
            diff = r["max_abs_diff_to_1_thread"]
            if diff > 1e-5:
                raise UserError(f"{name}: the output with {t} threads differs from 1 thread's by {diff:.2e}")
        results[name] = result
        doc += [f"## {name}", "", *markdown(result, name), ""]
    (out / "threads.json").write_text(json.dumps(results, indent=1))
    (out / "threads.md").write_text("\n".join(doc))
    shutil.rmtree(work)
    log(f"threads: {out.relative_to(PROJECT_ROOT)}/threads.md")
    print("\n".join(doc))
    return out
