"""Benchmark jitgrad's value_and_grad against hand-written gradients and its peers.

Run from the repository root::

    python -m benchmarks.run                 # everything, about 3-5 minutes on 2 cores
    python -m benchmarks.run --quick         # fewer, shorter repeats (a smoke run)
    python -m benchmarks.run --only logreg,mlp --json results.json

For every problem in ``problems.py`` it builds each contender that is installed (jitgrad,
hand-written Numba, hand-written NumPy, autograd, ``jax.jit(jax.value_and_grad)``, torch),
checks its value and gradient against the hand-written NumPy ones, times one call, and prints a
table.  It then measures jitgrad's first call (trace + compile) in this process and in a fresh
process whose on-disk cache is warm.  See ``benchmarks/README.md`` for how to read the output.

This module imports only the standard library and NumPy at the top: the fresh-process
measurement re-runs it as ``--first-call-child`` and must time the import of numba and jitgrad
itself.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.metadata
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field

import numpy

from . import problems

RTOL = 1e-7  # agreement required with the hand-written NumPy value and gradient

CONTENDERS = ["jitgrad", "hand-numba", "hand-numpy", "autograd", "jax", "torch"]
# (header, numerator, denominator): "jg/numba" > 1 means jitgrad is slower than hand-written Numba;
# "jax/jg" and "ag/jg" > 1 mean jitgrad is faster than that peer.
RATIOS = [
    ("jg/numba", "jitgrad", "hand-numba"),
    ("jax/jg", "jax", "jitgrad"),
    ("ag/jg", "autograd", "jitgrad"),
]

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------------------------------------------
# Results
# ------------------------------------------------------------------------------------------------


@dataclass
class Cell:
    """One contender on one problem."""

    status: str = "missing"  # missing | error | ok | mismatch
    median_us: float | None = None
    min_us: float | None = None
    calls_per_repeat: int = 0
    repeats: int = 0
    first_call_s: float | None = None  # includes tracing/compilation where there is any
    max_rel_err: float | None = None
    note: str = ""  # error summary or mismatch detail
    traceback: str = ""


@dataclass
class FirstCall:
    in_process_s: float | None = None
    fresh_warm_s: float | None = None
    fresh_import_numba_s: float | None = None
    fresh_import_jitgrad_s: float | None = None
    fresh_numba_startup_s: float | None = None
    fresh_cache_hits: int | None = None  # Numba's counters for jitgrad's kernels, when readable
    fresh_cache_misses: int | None = None
    error: str = ""


@dataclass
class ProblemResult:
    name: str
    description: str
    cells: dict[str, Cell] = field(default_factory=dict)
    first_call: FirstCall = field(default_factory=FirstCall)


# ------------------------------------------------------------------------------------------------
# Contenders.  Each builder returns (call, to_numpy): `call()` computes value and gradient for the
# problem's argument (already bound, already converted to the backend's array type), and
# `to_numpy(out)` turns its result into (float, ndarray-or-tuple) for the correctness check.
# ------------------------------------------------------------------------------------------------


class Missing(Exception):
    """The contender's library is not installed: show '-', not an error."""


def _import(name):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        # Only the library itself being absent means "not installed"; an import that fails
        # inside it (a broken install, a bug in jitgrad) is an error and is reported as one.
        if e.name is not None and name.split(".")[0] == e.name.split(".")[0] == e.name:
            raise Missing(str(e)) from None
        raise


def _identity(out):
    return out


def build_jitgrad(problem, data):
    jitgrad = _import("jitgrad")
    jnp = _import("jitgrad.numpy")
    vg = jitgrad.value_and_grad(problem.loss(jnp, data), argnum=0)
    arg = data["arg"]
    return (lambda: vg(arg)), _identity


def build_hand_numba(problem, data):
    from . import handwritten

    vg = handwritten.NUMBA[problem.handwritten](data)
    arg = data["arg"]
    return (lambda: vg(arg)), _identity


def build_hand_numpy(problem, data):
    from . import handwritten

    vg = handwritten.NUMPY[problem.handwritten](data)
    arg = data["arg"]
    return (lambda: vg(arg)), _identity


def build_autograd(problem, data):
    autograd = _import("autograd")
    anp = _import("autograd.numpy")
    vg = autograd.value_and_grad(problem.loss(anp, data), 0)
    arg = data["arg"]
    return (lambda: vg(arg)), _identity


def build_jax(problem, data):
    jax = _import("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = _import("jax.numpy")
    # Arrays already live on the device, as they would in a JAX program: a call pays neither
    # the NumPy -> device copy of its argument nor of the closure data.
    jdata = {k: jax.tree.map(jnp.asarray, v) for k, v in data.items()}
    vg = jax.jit(jax.value_and_grad(problem.loss(jnp, jdata)))
    arg = jdata["arg"]

    def call():
        # JAX dispatches asynchronously; without blocking we would time only the dispatch.
        return jax.block_until_ready(vg(arg))

    def to_numpy(out):
        value, grad = out
        return float(value), jax.tree.map(numpy.asarray, grad)

    return call, to_numpy


def build_torch(problem, data):
    torch = _import("torch")
    f = problem.torch_loss(torch, data)
    arg = data["arg"]
    is_tuple = isinstance(arg, tuple)

    def call():
        # NumPy in, NumPy out, like every other contender: from_numpy and .numpy() share memory,
        # so the conversion costs a few µs per array, and it is counted.
        if is_tuple:
            leaves = tuple(torch.from_numpy(a).requires_grad_() for a in arg)
            loss = f(leaves)
        else:
            leaves = torch.from_numpy(arg).requires_grad_()
            loss = f(leaves)
        loss.backward()
        if is_tuple:
            return loss.item(), tuple(t.grad.numpy() for t in leaves)
        return loss.item(), leaves.grad.numpy()

    return call, _identity


BUILDERS = {
    "jitgrad": build_jitgrad,
    "hand-numba": build_hand_numba,
    "hand-numpy": build_hand_numpy,
    "autograd": build_autograd,
    "jax": build_jax,
    "torch": build_torch,
}


# ------------------------------------------------------------------------------------------------
# Checking and timing
# ------------------------------------------------------------------------------------------------


def max_rel_error(out, ref):
    """Largest error of (value, grad) relative to the reference, leaf by leaf; NaN counts as inf.

    A gradient leaf's error is max|a - b| / max|b|: scaling by the largest entry rather than
    entry by entry keeps entries that are near zero by cancellation from failing on round-off.
    Raises ValueError on a structural mismatch: not a tuple where the argument was one, wrong
    length, shape or dtype.
    """
    value, grad = out
    ref_value, ref_grad = ref
    errs = [abs(float(value) - ref_value) / max(abs(ref_value), 1e-300)]
    if isinstance(ref_grad, tuple):
        if not isinstance(grad, tuple) or len(grad) != len(ref_grad):
            raise ValueError(
                f"gradient should be a tuple of {len(ref_grad)} arrays, like the argument; got "
                f"{type(grad).__name__}" + (f" of {len(grad)}" if hasattr(grad, "__len__") else "")
            )
        grads, ref_grads = grad, ref_grad
    else:
        grads, ref_grads = (grad,), (ref_grad,)
    for i, (g, r) in enumerate(zip(grads, ref_grads)):
        g = numpy.asarray(g)
        if g.shape != r.shape or g.dtype != r.dtype:
            raise ValueError(
                f"gradient leaf {i} is {g.dtype}{list(g.shape)}, expected {r.dtype}{list(r.shape)}"
            )
        scale = max(float(numpy.max(numpy.abs(r))), 1e-300)
        errs.append(float(numpy.max(numpy.abs(g - r))) / scale)
    return max(math.inf if math.isnan(e) else e for e in errs)


def _loop(call, n):
    t0 = time.perf_counter()
    for _ in range(n):
        call()
    return time.perf_counter() - t0


def time_per_call(call, target_s, repeats):
    """Median and minimum seconds per call over `repeats` loops of >= `target_s` each.

    The caller has already made the first call (compilation, caches).  One more call warms up
    and estimates the cost, which sizes the loop; each repeat then times that many back-to-back
    calls, so timer resolution and per-loop overhead vanish.  The garbage collector stays on
    (a user's program runs with it) but is emptied before each repeat so one repeat does not pay
    for another's garbage.  The tables report the minimum: other processes only ever add time,
    so the fastest repeat is the best estimate of the code's own cost (timeit's advice); the
    median goes to the JSON to show the spread.
    """
    t1 = _loop(call, 1)
    n = max(1, math.ceil(target_s / max(t1, 1e-9)))
    if n > 1:  # the single call may have been slow (cold caches); re-estimate on a short loop
        m = max(1, n // 10)
        n = max(1, math.ceil(target_s / max(_loop(call, m) / m, 1e-9)))
    per_call = []
    for _ in range(repeats):
        gc.collect()
        per_call.append(_loop(call, n) / n)
    return statistics.median(per_call), min(per_call), n


def _summarise(exc: BaseException) -> tuple[str, str]:
    """One line for the notes under the table, and the full traceback for the JSON.

    The line names the innermost frame in this repository outside benchmarks/ (that is, in
    jitgrad) when there is one: an error raised deep inside Numba is more useful located by the
    jitgrad line that called Numba.
    """
    frames = traceback.extract_tb(exc.__traceback__)
    bench_dir = os.path.dirname(os.path.abspath(__file__))
    ours = [
        f
        for f in frames
        if f.filename.startswith(REPO_ROOT) and not f.filename.startswith(bench_dir)
    ]
    frame = (ours or frames or [None])[-1]
    where = (
        f" [{os.path.relpath(frame.filename, REPO_ROOT)}:{frame.lineno} in {frame.name}]"
        if frame
        else ""
    )
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    msg = " | ".join(lines)
    msg = msg if len(msg) <= 300 else msg[:297] + "..."
    full = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return f"{type(exc).__name__}: {msg}{where}", full


def run_contender(name, problem, data, ref, args) -> Cell:
    cell = Cell()
    try:
        call, to_numpy = BUILDERS[name](problem, data)
    except Missing as e:
        cell.note = str(e)
        return cell
    except Exception as e:  # noqa: BLE001  (any failure is reported in the cell)
        cell.status = "error"
        cell.note, cell.traceback = _summarise(e)
        return cell
    try:
        t0 = time.perf_counter()
        out = call()
        cell.first_call_s = time.perf_counter() - t0
        try:
            cell.max_rel_err = max_rel_error(to_numpy(out), ref)
            cell.status = "ok" if cell.max_rel_err <= RTOL else "mismatch"
            if cell.status == "mismatch":
                cell.note = f"max relative error {cell.max_rel_err:.2e} > {RTOL:.0e}"
        except ValueError as e:
            cell.status, cell.note = "mismatch", str(e)
        # A wrong answer is still timed, and shown with its flag: hiding it would hide the bug.
        cell.median_us, cell.min_us, cell.calls_per_repeat = (
            x * 1e6 if i < 2 else x
            for i, x in enumerate(time_per_call(call, args.target, args.repeats))
        )
        cell.repeats = args.repeats
    except Exception as e:  # noqa: BLE001  (any failure is reported in the cell)
        cell.status = "error"
        cell.note, cell.traceback = _summarise(e)
    return cell


# ------------------------------------------------------------------------------------------------
# jitgrad's first call in a fresh process
# ------------------------------------------------------------------------------------------------


def first_call_child(name):
    """Runs in a fresh interpreter: time the imports, Numba's start-up, then the first call.

    NumPy and the problem data are set up before the clock starts, since neither is jitgrad's
    cost.  Numba initialises its typing and target machinery on the first compile in a process,
    whoever asks for it; a trivial function compiled first takes that cost (plus a few tens of
    ms for its own compilation) so that the first-call figure is what jitgrad itself spends.  A
    user's second run of a script pays the sum of the four.  Prints one JSON line.
    """
    problem = problems.BY_NAME[name]
    data = problem.make_data()
    t0 = time.perf_counter()
    import numba

    t1 = time.perf_counter()
    import jitgrad
    import jitgrad.numpy as jnp

    t2 = time.perf_counter()
    numba.njit(lambda v: v + 1.0)(1.0)
    t3 = time.perf_counter()
    vg = jitgrad.value_and_grad(problem.loss(jnp, data), argnum=0)
    vg(data["arg"])
    t4 = time.perf_counter()
    times = {"import_numba_s": t1 - t0, "import_jitgrad_s": t2 - t1, "numba_startup_s": t3 - t2}
    print(json.dumps({**times, "first_call_s": t4 - t3, **_kernel_cache_counts()}))


def _kernel_cache_counts():
    """Numba's disk-cache hits and misses over the kernels jitgrad has loaded in this process.

    A "warm" first call that missed the cache (because jitgrad's source changed between the two
    processes, say) measures a compile, not a load, and the table must say so.  This reads a
    private table of jitgrad's (`jitgrad.compile._LOADED`), so it gives up quietly if that
    changes.
    """
    loaded = getattr(sys.modules.get("jitgrad.compile"), "_LOADED", None)
    try:
        stats = [k.stats for k in loaded.values()]
        return {
            "cache_hits": sum(sum(s.cache_hits.values()) for s in stats),
            "cache_misses": sum(sum(s.cache_misses.values()) for s in stats),
        }
    except (AttributeError, TypeError):
        return {}


def compile_bytecode():
    """Write jitgrad's bytecode (`__pycache__/*.pyc`), as installing a wheel does: a new process
    then imports jitgrad without compiling its sources.  An editable install under
    `$PYTHONDONTWRITEBYTECODE` (this machine sets it) never writes them, and every new process
    compiled jitgrad's 27 modules again: 70 ms of a 0.2 s import."""
    import compileall

    compileall.compile_dir(os.path.join(REPO_ROOT, "jitgrad"), quiet=1)


def measure_fresh_first_call(name, timeout_s=300):
    cmd = [sys.executable, "-m", "benchmarks.run", "--first-call-child", name]
    proc = subprocess.run(
        cmd, cwd=REPO_ROOT, check=False, capture_output=True, text=True, timeout=timeout_s
    )
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or ["(no output)"]
        raise RuntimeError(f"fresh process exited {proc.returncode}: {lines[-1]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------
# Machine and versions
# ------------------------------------------------------------------------------------------------


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        pass
    try:  # jitgrad runs from the source tree, not from an installed distribution
        mod = importlib.import_module(dist)
    except Exception:  # noqa: BLE001  (a broken install shows as '-')
        return "-"
    return str(getattr(mod, "__version__", "source tree"))


def _git_revision():
    try:
        rev = (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"],
                cwd=REPO_ROOT,
                check=False,
                capture_output=True,
                text=True,
            ).stdout.strip()
            or "no commit"
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain"],
            cwd=REPO_ROOT,
            check=False,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return rev + (" + uncommitted changes" if dirty else "")
    except OSError:
        return "unknown"


def _busy_cpu_seconds():
    """Seconds of CPU the whole machine has spent busy since boot (Linux), or None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds():
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class LoadMonitor:
    """How much CPU *other* processes took while we ran: machine-wide busy time minus our own.

    On a 2-core machine a concurrent test suite halves what multi-threaded contenders get and
    makes BLAS threads spin, so the tables say when the numbers were taken on a busy machine.
    """

    def __init__(self):
        self.wall0 = time.perf_counter()
        self.busy0 = _busy_cpu_seconds()
        self.own0 = _own_cpu_seconds()
        self.load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None

    def others_fraction(self):
        busy = _busy_cpu_seconds()
        if busy is None or self.busy0 is None:
            return None
        wall = time.perf_counter() - self.wall0
        others = (busy - self.busy0) - (_own_cpu_seconds() - self.own0)
        return max(0.0, others) / (wall * (os.cpu_count() or 1))


def _jitgrad_source_stamp():
    """(path, mtime, size) of every file of jitgrad's source tree: if it changes during the run,
    the rows and the cold/warm pair may have measured different versions of jitgrad."""
    root = os.path.join(REPO_ROOT, "jitgrad")
    stamp = []
    for dirpath, _, files in os.walk(root):
        for name in sorted(files):
            if name.endswith(".py"):
                st = os.stat(os.path.join(dirpath, name))
                stamp.append((os.path.join(dirpath, name), st.st_mtime_ns, st.st_size))
    return sorted(stamp)


def run_conditions(env: dict, monitor: LoadMonitor, source_stamp=None) -> dict:
    """`env` with how the run went: the other processes' load (flagged when it makes timings
    unreliable) and, given the stamp taken at the start, whether jitgrad's source changed."""
    others = monitor.others_fraction()
    if others is not None:
        env["other load"] = (
            f"{others:.0%} of all cores used by other processes during the run "
            f"(1-min load average before it: {monitor.load_before:.2f})"
        )
        if others > 0.05:
            env["other load"] += "  <-- BUSY MACHINE: timings are unreliable, rerun when idle"
    if source_stamp is not None and _jitgrad_source_stamp() != source_stamp:
        env["WARNING"] = "jitgrad's source files changed during the run: rows may mix versions"
    return env


def environment():
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    env = {
        "cpu": _cpu_model(),
        "cores": f"{os.cpu_count()} logical, {usable} usable",
        "os": platform.platform(),
        "python": platform.python_version(),
        "jitgrad git": _git_revision(),
    }
    for mod in ["numpy", "numba", "scipy", "autograd", "jax", "jaxlib", "torch", "jitgrad"]:
        env[mod] = _version(mod)
    threads = [
        f"{k}={os.environ[k]}"
        for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
        if k in os.environ
    ]
    env["thread env"] = " ".join(threads) or "(defaults: libraries may use every core)"
    return env


# ------------------------------------------------------------------------------------------------
# Printing
# ------------------------------------------------------------------------------------------------


def fmt_us(x):
    if x is None:
        return "-"
    if x < 10:
        return f"{x:.2f}"
    if x < 100:
        return f"{x:.1f}"
    return f"{x:,.0f}"


def fmt_cell(cell: Cell):
    if cell.status == "missing":
        return "-"
    if cell.status == "error":
        return "ERROR"
    text = fmt_us(cell.min_us)
    return text + " !" if cell.status == "mismatch" else text


def fmt_ratio(a: Cell, b: Cell):
    # A ratio involving a wrong answer is meaningless; show it only when both cells are correct.
    if a.status != "ok" or b.status != "ok":
        return "-"
    r = a.min_us / b.min_us
    return f"{r:.2f}x" if r < 100 else f"{r:,.0f}x"


def fmt_s(x):
    if x is None:
        return "-"
    return f"{x * 1e3:,.0f} ms" if x >= 0.1 else f"{x * 1e3:.1f} ms"


def print_table(header, rows, first_width=14):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    widths[0] = max(widths[0], first_width)
    line = "  ".join(
        h.ljust(widths[0]) if i == 0 else h.rjust(widths[i]) for i, h in enumerate(header)
    )
    print(line)
    print("-" * len(line))
    for r in rows:
        print(
            "  ".join(
                str(c).ljust(widths[0]) if i == 0 else str(c).rjust(widths[i])
                for i, c in enumerate(r)
            )
        )


def report(results: list[ProblemResult], env, args):
    print()
    print("Machine and versions")
    for k, v in env.items():
        print(f"  {k:<11} {v}")

    print()
    print("Problems")
    for res in results:
        print(f"  {res.name:<14} {res.description}")

    print()
    print(
        f"Time per value_and_grad call, µs (best of {args.repeats} repeats, each a loop of "
        f">= {args.target:g} s; lower is better)"
    )
    header = ["problem"] + CONTENDERS + [r[0] for r in RATIOS]
    rows = []
    for res in results:
        row = [res.name]
        row += [fmt_cell(res.cells[c]) for c in CONTENDERS]
        row += [fmt_ratio(res.cells[a], res.cells[b]) for _, a, b in RATIOS]
        rows.append(row)
    print_table(header, rows)
    print(
        "  '-' not installed;  ERROR raised (see below);  '!' value or gradient disagrees with "
        f"hand-numpy beyond rtol {RTOL:g}"
    )
    print(
        "  jg/numba > 1: jitgrad slower than hand-written Numba;  jax/jg, ag/jg > 1: jitgrad "
        "faster than that peer"
    )
    print(
        "  jax: arrays pre-placed on the device, result blocked on;  torch: NumPy in/out "
        "(conversion counted)"
    )

    print()
    print(
        "jitgrad first call: trace + adjoint + codegen + Numba compile (cold) or cache load (warm)"
    )
    header = [
        "problem",
        "cold cache",
        "warm cache",
        "import numba",
        "import jitgrad",
        "numba start-up",
        "fresh total",
        "steady call",
        "jax 1st call",
    ]
    rows = []
    for res in results:
        fc = res.first_call
        parts = [
            fc.fresh_import_numba_s,
            fc.fresh_import_jitgrad_s,
            fc.fresh_numba_startup_s,
            fc.fresh_warm_s,
        ]
        total = sum(parts) if None not in parts else None
        jg = res.cells["jitgrad"]
        steady = fmt_us(jg.min_us) + " µs" if jg.min_us is not None else "-"
        rows.append(
            [
                res.name,
                fmt_s(fc.in_process_s),
                fmt_s(fc.fresh_warm_s) + (" *" if fc.fresh_cache_misses else ""),
                fmt_s(fc.fresh_import_numba_s),
                fmt_s(fc.fresh_import_jitgrad_s),
                fmt_s(fc.fresh_numba_startup_s),
                fmt_s(total),
                steady,
                fmt_s(res.cells["jax"].first_call_s),
            ]
        )
    print_table(header, rows)
    if any(r.first_call.fresh_cache_misses for r in results):
        print(
            "  * the fresh process missed Numba's disk cache and compiled: that cell is a "
            "compile time, not a load"
        )
    print(
        "  cold cache: first call in this process, empty cache dir (Numba already started up "
        "by the hand-written kernels)"
    )
    print(
        "  warm cache: first call in a fresh process after the cold call filled the on-disk "
        "cache; that process's"
    )
    print(
        "  imports and Numba's one-time start-up are timed apart; fresh total = their sum, "
        "what a script's second run pays"
    )

    notes = []
    for res in results:
        for c in CONTENDERS:
            cell = res.cells[c]
            if cell.status in ("error", "mismatch"):
                notes.append(f"  {cell.status.upper():8} {c} on {res.name}: {cell.note}")
        if res.first_call.error:
            notes.append(
                f"  ERROR    jitgrad fresh-process first call on {res.name}: {res.first_call.error}"
            )
    if notes:
        print()
        print("!" * 100)
        print("Errors and mismatches (full tracebacks with --json)")
        print("\n".join(notes))
        print("!" * 100)


# ------------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--quick", action="store_true", help="3 repeats of >= 0.05 s instead of 5 of >= 0.2 s"
    )
    ap.add_argument(
        "--only",
        metavar="NAME[,NAME]",
        help="problems to run, from: " + ", ".join(problems.BY_NAME),
    )
    ap.add_argument("--json", metavar="PATH", help="also write every result to this JSON file")
    ap.add_argument(
        "--no-fresh-process",
        action="store_true",
        help="skip the first-call measurement in a fresh interpreter",
    )
    ap.add_argument(
        "--single-thread",
        action="store_true",
        help="limit BLAS, Numba, XLA and PyTorch to one thread each (steadier on a shared "
        "machine; compares the code, not the thread pools)",
    )
    ap.add_argument("--first-call-child", metavar="NAME", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.target, args.repeats = (0.05, 3) if args.quick else (0.2, 5)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in problems.BY_NAME]
        if unknown:
            ap.error(
                f"unknown problem(s) {', '.join(unknown)}; choose from "
                + ", ".join(problems.BY_NAME)
            )
        args.problems = [p for p in problems.PROBLEMS if p.name in names]  # table order
    else:
        args.problems = list(problems.PROBLEMS)
    return args


SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",  # PyTorch's intra-op pool, OpenMP BLAS builds
    "OPENBLAS_NUM_THREADS": "1",  # NumPy's and SciPy's OpenBLAS (Numba's np.dot uses SciPy's)
    "MKL_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
}


def reexec_single_threaded(module: str, argv):
    """Thread pools are sized when each library loads, and NumPy (hence OpenBLAS) is already
    loaded by the time the arguments are parsed: start `python -m module argv` again with the
    variables set (once: the new process finds them set)."""
    if all(os.environ.get(k) == v for k, v in SINGLE_THREAD_ENV.items()):
        return
    os.environ.update(SINGLE_THREAD_ENV)
    argv = sys.argv[1:] if argv is None else list(argv)
    os.execv(sys.executable, [sys.executable, "-m", module, *argv])


def main(argv=None):
    args = parse_args(argv)
    if args.single_thread:
        reexec_single_threaded("benchmarks.run", argv)
    if args.first_call_child:
        first_call_child(args.first_call_child)
        return 0
    compile_bytecode()

    # A cache directory of our own, empty at the start: the in-process first call then really
    # traces and compiles, whatever earlier runs left in ~/.cache/jitgrad, and the fresh-process
    # child (which inherits the environment) finds exactly what that call wrote.
    cache = tempfile.mkdtemp(prefix="jitgrad-bench-cache-")
    os.environ["JITGRAD_CACHE_DIR"] = cache
    try:
        return _run(args)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def _run(args):
    started = time.perf_counter()
    monitor = LoadMonitor()
    source_stamp = _jitgrad_source_stamp()
    results = []
    for problem in args.problems:
        print(f"[{time.perf_counter() - started:6.1f} s] {problem.name}: ", end="", flush=True)
        data = problem.make_data()
        res = ProblemResult(problem.name, problem.description)
        from . import handwritten

        ref = handwritten.NUMPY[problem.handwritten](data)(data["arg"])
        # hand-numba runs before jitgrad so Numba's one-time start-up (LLVM initialisation) is
        # paid before jitgrad's in-process first call, whichever problem comes first.
        for name in ["hand-numpy", "hand-numba"] + [
            c for c in CONTENDERS if c not in ("hand-numpy", "hand-numba")
        ]:
            print(name, end=" ", flush=True)
            res.cells[name] = run_contender(name, problem, data, ref, args)
        res.first_call.in_process_s = res.cells["jitgrad"].first_call_s
        if res.cells["jitgrad"].status in ("ok", "mismatch") and not args.no_fresh_process:
            print("fresh-process", end=" ", flush=True)
            try:
                child = measure_fresh_first_call(problem.name)
                res.first_call.fresh_warm_s = child["first_call_s"]
                res.first_call.fresh_import_numba_s = child["import_numba_s"]
                res.first_call.fresh_import_jitgrad_s = child["import_jitgrad_s"]
                res.first_call.fresh_numba_startup_s = child["numba_startup_s"]
                res.first_call.fresh_cache_hits = child.get("cache_hits")
                res.first_call.fresh_cache_misses = child.get("cache_misses")
            except Exception as e:  # noqa: BLE001
                res.first_call.error = _summarise(e)[0]
        print()
        results.append(res)
        del data, ref
        gc.collect()

    env = run_conditions(environment(), monitor, source_stamp)
    report(results, env, args)
    print(f"\nTotal run time {time.perf_counter() - started:.0f} s")
    if args.json:
        out = {
            "environment": env,
            "rtol": RTOL,
            "repeats": args.repeats,
            "min_repeat_s": args.target,
            "statistic": "min",
            "results": [
                {
                    "name": r.name,
                    "description": r.description,
                    "cells": {k: vars(v) for k, v in r.cells.items()},
                    "first_call": vars(r.first_call),
                }
                for r in results
            ],
        }
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
        print(f"Wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
