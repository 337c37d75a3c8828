"""Matrix products and their neighbours: logistic regression and the tanh MLP over a sweep of sizes.

Run from the repository root::

    python -m benchmarks.products                  # both sweeps, ~1.5 min on 2 idle cores
    python -m benchmarks.products --quick          # 3 repeats of >= 0.05 s instead of 5 of >= 0.2 s
    python -m benchmarks.products --only logreg    # or --only mlp
    python -m benchmarks.products --autograd       # add autograd's column (slow at large sizes)
    python -m benchmarks.products --single-thread  # every library on one thread (as run.py)
    python -m benchmarks.products --json products.json

``run.py`` times ``logreg`` and ``mlp`` at one size each; this sweeps them, because a problem
that is dominated by BLAS at one size can be dominated by the elementwise glue, by allocation or
by per-call overhead at another.  Every size is a ``problems.Problem`` built from the same loss
factories and data makers as run.py's, and every contender is run.py's own builder, checked and
timed by run.py's ``run_contender`` (same ``RTOL`` against the hand-written NumPy reference, same
``time_per_call``, same best-of-repeats statistic), all in one process so that the contenders
share the machine's state.  One Markdown table per problem: rows are sizes, cells µs per
value-and-gradient call, then the ratios jitgrad / jax, jitgrad / torch and jitgrad /
hand-numba (> 1: jitgrad is slower).  A cell marked ``!`` disagreed with hand-numpy beyond
``RTOL`` (it is still timed, and its ratios are blanked); ``ERROR`` raised; ``-`` is a library
that is not installed.  Notes under the table give each error's and mismatch's first line.

Importing ``benchmarks`` sets ``JITGRAD_EXECUTION=compile``, so jitgrad compiles at its first
call and the timed calls are steady state.  jitgrad's kernel cache is a new empty directory.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass

from . import problems
from .run import (
    BUILDERS,
    RTOL,
    Cell,
    LoadMonitor,
    _jitgrad_source_stamp,
    environment,
    fmt_cell,
    fmt_ratio,
    reexec_single_threaded,
    fmt_s,
    run_conditions,
    run_contender,
)

# Column order.  hand-numba runs right after hand-numpy so Numba's one-time start-up is paid
# before jitgrad's first call (run.py's order).
CONTENDERS = ["jitgrad", "hand-numba", "hand-numpy", "jax", "torch"]
RUN_ORDER = ["hand-numpy", "hand-numba", "jitgrad", "jax", "torch", "autograd"]
# (header, numerator, denominator): > 1 means jitgrad is slower than that contender.
RATIOS = [
    ("jg/jax", "jitgrad", "jax"),
    ("jg/torch", "jitgrad", "torch"),
    ("jg/numba", "jitgrad", "hand-numba"),
]


@dataclass(frozen=True)
class Size:
    sweep: str  # "logreg" | "mlp"
    label: str  # the row's name in the table
    params: dict  # the arguments of the data maker
    problem: problems.Problem


def _logreg(n_samples, n_features):
    return Size(
        "logreg",
        f"{n_samples:,} x {n_features:,}",
        {"n_samples": n_samples, "n_features": n_features},
        problems.Problem(
            f"logreg-{n_samples}x{n_features}",
            f"logistic regression, {n_samples:,} x {n_features:,} inputs, grad of the "
            f"{n_features:,} weights",
            problems._logreg_data(n_samples, n_features),
            problems.logistic_regression,
            problems.logistic_regression_torch,
            "logreg",
        ),
    )


def _mlp(batch, n_in, n_hidden, n_out):
    net = f"{n_in}-{n_hidden}-{n_out}"
    return Size(
        "mlp",
        f"batch {batch:,}, {net}",
        {"batch": batch, "n_in": n_in, "n_hidden": n_hidden, "n_out": n_out},
        problems.Problem(
            f"mlp-{batch}-{net}",
            f"tanh MLP {net}, softmax cross-entropy, batch {batch}, grad of (W1,b1,W2,b2)",
            problems._mlp_data(batch, n_in, n_hidden, n_out),
            problems.mlp,
            problems.mlp_torch,
            "mlp",
        ),
    )


SWEEPS = {
    "logreg": [
        _logreg(1_000, 10),
        _logreg(1_000, 100),
        _logreg(20_000, 100),  # run.py's logreg
        _logreg(100_000, 100),
        _logreg(20_000, 1_000),
    ],
    "mlp": [
        _mlp(32, 784, 128, 10),
        _mlp(256, 784, 128, 10),  # run.py's mlp
        _mlp(2048, 784, 128, 10),
        _mlp(256, 784, 512, 10),
    ],
}
TITLES = {
    "logreg": "logistic regression (autograd's example), n_samples x n_features; "
    "grad of the n_features weights",
    "mlp": "tanh MLP n_in-n_hidden-n_out, softmax cross-entropy; grad of (W1, b1, W2, b2)",
}


# ------------------------------------------------------------------------------------------------
# Running
# ------------------------------------------------------------------------------------------------


def run_size(size: Size, contenders, args, started) -> dict[str, Cell]:
    from . import handwritten  # imports numba: after the cache directory is set, like jitgrad

    print(f"[{time.perf_counter() - started:6.1f} s] {size.problem.name}: ", end="", flush=True)
    data = size.problem.make_data()
    ref = handwritten.NUMPY[size.problem.handwritten](data)(data["arg"])
    cells = {}
    for name in [c for c in RUN_ORDER if c in contenders]:
        print(name, end=" ", flush=True)
        t0 = time.perf_counter()
        cells[name] = run_contender(name, size.problem, data, ref, args)
        print(f"({time.perf_counter() - t0:.1f} s)", end=" ", flush=True)
    print()
    del data, ref
    gc.collect()
    return cells


# ------------------------------------------------------------------------------------------------
# Printing
# ------------------------------------------------------------------------------------------------


def _first_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[0].strip() if lines else "(no message)"


def markdown_table(sweep, sizes, results, contenders, notes):
    """The table's lines; appends '[k] ...' footnotes for errors and mismatches to `notes`."""
    header = ["size"] + contenders + [r[0] for r in RATIOS]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    for size in sizes:
        cells = results[size.problem.name]
        row = [size.label]
        for c in contenders:
            cell = cells[c]
            text = fmt_cell(cell)
            if cell.status in ("error", "mismatch"):
                notes.append(f"[{len(notes) + 1}] {c} on {sweep} {size.label}: "
                             f"{cell.status.upper()} {_first_line(cell.note)}")
                text += f" [{len(notes)}]"
            row.append(text)
        row += [fmt_ratio(cells[a], cells[b]) for _, a, b in RATIOS]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def report(sweeps, results, contenders, env, args):
    notes: list[str] = []
    for sweep in sweeps:
        print()
        print(f"### {sweep}: {TITLES[sweep]}")
        print()
        print("\n".join(markdown_table(sweep, SWEEPS[sweep], results, contenders, notes)))
    print()
    print(
        f"µs per value_and_grad call, best of {args.repeats} repeats, each a loop of >= "
        f"{args.target:g} s (run.py's time_per_call); lower is better.  jg/X = jitgrad / X: > 1 "
        "means\njitgrad is slower.  '!': value or gradient disagrees with hand-numpy beyond rtol "
        f"{RTOL:g} (timed anyway; ratios blanked).  ERROR: raised.  '-': not installed.\n"
        "jax: jax.jit(value_and_grad), x64, arrays placed on the device beforehand, result "
        "blocked on;  torch: float64, NumPy in/out (conversion counted).\n"
        f"jitgrad: JITGRAD_EXECUTION={os.environ.get('JITGRAD_EXECUTION', '(unset)')}, first "
        "call (trace + compile) excluded from the timing."
    )
    print()
    print("First calls (compile/trace included; not part of the table)")
    for sweep in sweeps:
        for size in SWEEPS[sweep]:
            cells = results[size.problem.name]
            parts = [f"{c} {fmt_s(cells[c].first_call_s)}" for c in ("jitgrad", "jax")
                     if c in cells]
            print(f"  {size.problem.name:<22} " + ",  ".join(parts))
    if notes:
        print()
        print("Errors and mismatches (full tracebacks with --json)")
        for n in notes:
            print("  " + n)
    print()
    print("Machine and versions")
    for k, v in env.items():
        print(f"  {k:<11} {v}")
    return notes


# ------------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.products",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--only", choices=list(SWEEPS), help="one sweep only")
    ap.add_argument(
        "--quick", action="store_true", help="3 repeats of >= 0.05 s instead of 5 of >= 0.2 s"
    )
    ap.add_argument("--autograd", action="store_true", help="add autograd (slow)")
    ap.add_argument("--json", metavar="PATH", help="also write every result to this JSON file")
    ap.add_argument(
        "--single-thread",
        action="store_true",
        help="as run.py: BLAS, Numba, XLA and PyTorch limited to one thread each",
    )
    args = ap.parse_args(argv)
    args.target, args.repeats = (0.05, 3) if args.quick else (0.2, 5)
    args.sweeps = [args.only] if args.only else list(SWEEPS)
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.single_thread:
        reexec_single_threaded("benchmarks.products", argv)
    if "jitgrad" in sys.modules:
        raise RuntimeError("jitgrad was imported before its cache directory was set")
    cache = tempfile.mkdtemp(prefix="jitgrad-products-cache-")
    os.environ["JITGRAD_CACHE_DIR"] = cache
    try:
        return _run(args)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def _run(args):
    started = time.perf_counter()
    monitor = LoadMonitor()
    stamp = _jitgrad_source_stamp()
    contenders = CONTENDERS + (["autograd"] if args.autograd else [])
    assert all(c in BUILDERS for c in contenders), "run.py's BUILDERS names every contender"
    results = {}
    for sweep in args.sweeps:
        for size in SWEEPS[sweep]:
            results[size.problem.name] = run_size(size, contenders, args, started)
    env = run_conditions(environment(), monitor, stamp)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    env["load avg"] = f"{load} (1, 5, 15 min, at the end)"
    report(args.sweeps, results, contenders, env, args)
    total = time.perf_counter() - started
    print(f"\nTotal run time {total:.0f} s")
    if args.json:
        out = {
            "environment": env,
            "rtol": RTOL,
            "repeats": args.repeats,
            "min_repeat_s": args.target,
            "statistic": "min",
            "total_s": total,
            "results": [
                {
                    "sweep": sweep,
                    "name": size.problem.name,
                    "label": size.label,
                    "params": size.params,
                    "description": size.problem.description,
                    "cells": {k: vars(v) for k, v in results[size.problem.name].items()},
                }
                for sweep in args.sweeps
                for size in SWEEPS[sweep]
            ],
        }
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
        print(f"Wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
