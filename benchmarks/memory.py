"""Peak memory of one gradient call: jitgrad against hand-written Numba/NumPy, autograd, JAX, torch.

Run from the repository root::

    python -m benchmarks.memory                       # every problem and contender, ~1.5-2 min
    python -m benchmarks.memory --quick               # 1 repeat, working set only (under a minute)
    python -m benchmarks.memory --only mlp,logreg --contenders jitgrad,jax --json mem.json
    python -m benchmarks.memory --controls fixed      # only the controls, as one JSON line

What is measured
----------------
For each problem of ``problems.py`` and each contender of ``run.py``, built by ``run.BUILDERS``
exactly as the timing benchmark builds it (same data and closures, JAX arrays already on the
device, torch's NumPy-in/NumPy-out conversion), the **peak extra resident memory of one warm call**
that computes value and gradient: the process's peak resident set size (RSS) during the call less
its RSS just before it.  MB are 10**6 bytes.  The call's result (the gradient) is part of it.

How
---
Every (problem, contender) runs in a fresh interpreter (``--child``), so one library's pools,
thread stacks and caches do not show in another's figure.  The child builds the data and the
contender, makes two warm-up calls (the first traces and compiles: jitgrad compiles at its first
call because importing ``benchmarks`` sets ``JITGRAD_EXECUTION=compile``; the second lets lazily
built paths such as JAX's C++ dispatch settle), then, for each of 3 repeats (1 with ``--quick``):

1. ``gc.collect()`` and glibc's ``malloc_trim(0)``, which gives the free chunks of every malloc
   arena back to the kernel, so that heap pages freed by an earlier call cannot hide this one's;
2. ``echo 5 > /proc/self/clear_refs``, which resets the peak RSS (``VmHWM``) to the current RSS
   (Linux >= 4.0; ``peak_reset_problem`` checks that it works, or says why not);
3. read ``VmRSS`` from ``/proc/self/status``, make ONE call and, with its result alive, read
   ``VmHWM``: peak extra = ``VmHWM`` - ``VmRSS`` before;
4. drop the result, ``gc.collect()``, ``malloc_trim(0)``: ``VmRSS`` - ``VmRSS`` before is what the
   call *retained* (a library's pool or cache, a leak).

The tables show the median of the repeats (the JSON has each one, in bytes).  The kernel counts RSS
for the process, so what helper threads touch (BLAS, XLA's and torch's pools, Numba's ``prange``
workers) counts too: a control allocates in a thread.

Two allocator settings, two children per cell:

* **working set** (policy ``fixed``, the main table).  The child first fixes glibc's thresholds
  with ``mallopt``: blocks of 1 MiB or more get an ``mmap`` of their own, unmapped at ``free``;
  an arena's free top above 128 KiB is given back.  glibc's default *adaptive* thresholds (a
  freed block raises the mmap threshold to its size, up to 32 MiB, and the trim threshold to
  twice that) were found to defeat the method: after the warm-up calls, blocks of 8 MB come from
  the heap, and what JAX's worker threads free lands on the top of their own arenas, which
  ``malloc_trim`` does not give back (it trims only the main arena's top): JAX read 0.02 to 24 MB
  for a call XLA plans at 24 MB, varying from one process to the next.  With fixed thresholds it
  reads 24.0-24.4 MB every time.  What is measured then is the memory the code keeps alive at
  once, which is what a gradient call costs whichever allocator runs it, with one caveat for
  blocks under the threshold: they come from the heap, where a freed block that the next request
  does not fit is not reused, so the figure includes heap fragmentation.  It matters for torch on
  the sub-MB rows: logreg reads 2.2-2.9 MB with the 1 MiB threshold and 0.76-0.94 MB with
  ``--mmap-threshold 131072`` or ``4096``, against 0.8-1.1 for hand-numpy and autograd either
  way.  A threshold that low has its own cost (next section: every block then unmaps at
  ``free``, and the peak then reads up to ~0.25 MB low), which is why 1 MiB is the default.
* **glibc defaults** (policy ``glibc``, second table, skipped by ``--quick``): the same trimmed
  measurement under glibc's adaptive defaults, and a *loop* series: after one more call, no
  ``malloc_trim`` before each call, as when a program calls the gradient in a loop.  The loop
  figure is what a call adds to the RSS of a process that already holds the memory the previous
  call freed: glibc reuses it, so it can read ~0 for a call that needs 50 MB.  The trimmed figure
  under defaults can also be *larger* than the working set: torch's rosenbrock-1M reads 112-144 MB
  against a working set of 48 MB, freed 8 MB chunks on the heap not fitting the next, slightly
  larger, requests (fragmentation).  Neither is a property of the code alone; both are shown
  because they are what a user's process sees.

Reference columns
-----------------
* ``floor (grad)``: the bytes of the returned gradient.  The inputs exist before the call and are
  not "extra"; the gradient has to be written somewhere new, so no value-and-gradient call can
  peak lower.  Everything above it is a temporary: a forward intermediate the backward pass
  reads, a recomputable one kept anyway, or scratch.  ``inputs`` (the differentiated argument
  and the closure arrays) is shown for scale.
* ``jg kernel allocs``: what jitgrad's generated kernel allocates, read from
  ``jitgrad.explain(f, x).source`` (``kernel_allocations``): every
  ``np.empty/zeros/full/ones``, ``.copy()`` and ``runtime.matmul``/``np.dot`` result, sized by
  evaluating its shape with ``explain(...).lifted`` (a product by its type in the IR comment), as
  "arrays / MB", the gradient included.  An ``np.ascontiguousarray`` copies only a non-contiguous
  array, which it never gets here; it is not counted.  Arrays are freed after their last use, so
  the measured peak can be below the sum.
* ``XLA temp+out``: ``jax.jit(jax.value_and_grad(f)).lower(x).compile().memory_analysis()``,
  ``temp_size_in_bytes + output_size_in_bytes`` (argument buffers exist before the call): XLA's
  own plan, against which the measured ``jax`` column can be checked.  Scratch that XLA's
  runtime allocates outside the plan (the matrix-product library's packing buffers, say) is not
  in it: ``mlp``, made of matrix products, measures 1.5 MB above it.
* ``tracemalloc`` (hand-numpy and autograd, cross-check table): NumPy reports its data buffers to
  ``tracemalloc``, so its peak over one call (run after the RSS repeats) counts in bytes the
  arrays alive at once, independently of pages and allocators (autograd's Python objects too).

Resolution and limits
---------------------
* Pages are 4 KiB: 0.0041 MB is the smallest step, and a do-nothing call reads 0 to 0.008 MB.
* The peak can read up to ~0.25 MB **low**.  The kernel records ``VmHWM`` when RSS is about to
  shrink (an ``munmap``, a trim) from its per-CPU RSS counters summed approximately (each CPU may
  hold up to 31 pages not yet folded in; 2 CPUs here), whereas ``VmRSS`` is summed exactly when
  read.  The controls show it: two 80 MB arrays one after the other read 79.9, ten 160 kB arrays
  alive read 1.51-1.57 of 1.6.  Rows under 1 MB (logreg, the small problems) are good to that
  much; compare them with the ``tracemalloc`` and ``jg kernel`` columns.  (Hand-written Numba's
  logreg keeps two 160 kB arrays alive at once, 0.32 MB: it reads 0.29-0.32 with the default
  threshold, 0.11-0.15 with a 128 KiB one, under which both are unmapped at ``free``.)
* A process that compiled (Numba's LLVM) has a fragmented heap; trimming it leaves holes whose
  pages the call's small allocations fault in again.  That is worth up to ~0.1 MB: jitgrad's
  chain-1k reads 0.12 MB in the child that compiled its kernel, 0.03 in one that loaded it from
  the cache.  Figures under ~0.2 MB on the small problems are the method's noise.
* The peak is of *resident* memory: an ``np.empty`` whose pages are never written costs nothing.
* What ``malloc_trim`` cannot give back stays invisible to the trimmed series: memory a library
  keeps in a pool of its own is resident before the call and reused by it.  The ``retained``
  table is the check for a pool filled by the call, and warm-up calls would have filled one
  before: read it with the XLA cross-check.  Torch's ``libc10`` and jaxlib's ``libjax_common``
  allocate with glibc's ``malloc``/``posix_memalign`` (their dynamic imports), so what they free
  goes back to glibc, where the method sees it; and the measured ``jax`` column agrees with
  XLA's plan within 0.4 MB on the 1M-element problems.
* Transparent huge pages are used on ``madvise`` only here (printed with the machine); with
  ``always`` a large array could grow the RSS in 2 MiB steps.

Validation
----------
Every run starts with controls, in children of their own, measured by the same function as the
contenders (table "Validation"): a do-nothing call (0 MB), ``numpy.ones(10**7)`` (80 MB), two
80 MB arrays one after the other (80, not 160), two alive at once (160), 80 MB allocated in a
helper thread (80), ``numpy.ones(10**5)`` (0.8 MB) and ten ``numpy.ones(20_000)`` alive at once
(1.6 MB).  ``tests/test_benchmark_memory.py`` runs the first two in a subprocess, and skips when
``/proc/self/clear_refs`` cannot be written.

jitgrad uses a private, empty kernel cache (``JITGRAD_CACHE_DIR``, a temporary directory deleted
at the end) shared by one run's children: the first child of a problem compiles, in its warm-up
calls, and the compile's memory is freed and trimmed before the first measured call.  Whether
each contender's value and gradient are right is what ``benchmarks.run`` checks; this module only
measures.  Other processes' load changes only the run time (RSS is per process).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy

from . import problems
from .run import CONTENDERS  # run.py imports only the standard library and NumPy at its top

MB = 1e6
REPEATS = 3
WARMUPS = 2
CHILD_TIMEOUT_S = 600
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------------------------------------------
# The measuring function (used by the contenders' children, the controls and the test)
# ------------------------------------------------------------------------------------------------

_LIBC = None


def malloc_trim():
    """Give the free chunks of glibc's arenas, and the main arena's free top, back to the kernel
    (not the free tops of threads' arenas: module docstring); False if not glibc."""
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL("libc.so.6")
            _LIBC.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):
            _LIBC = False
    if _LIBC is False:
        return False
    _LIBC.malloc_trim(0)
    return True


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
MMAP_THRESHOLD = 1024 * 1024  # blocks from 1 MiB up: an mmap each, unmapped at free()
TRIM_THRESHOLD = 128 * 1024  # glibc's default: an arena's free top above it is given back


def fix_malloc_thresholds(mmap_threshold=MMAP_THRESHOLD, trim_threshold=TRIM_THRESHOLD):
    """Fix glibc's mmap and trim thresholds (module docstring, "working set"), which turns off
    its adaptive ones: those raise the mmap threshold to the size of the largest block freed so
    far (up to 32 MiB) and the trim threshold to twice that.  Call it first thing in a process.
    False if not glibc."""
    malloc_trim()  # loads libc
    if not _LIBC:
        return False
    _LIBC.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(_LIBC.mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(
        _LIBC.mallopt(M_TRIM_THRESHOLD, trim_threshold))


def read_status():
    """VmRSS and VmHWM of this process, in bytes."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0]) * 1024  # reported in kB (KiB)
    return out


def reset_peak():
    """Reset VmHWM to the current RSS (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_reset_problem():
    """Why the peak cannot be measured here, or None if it can: /proc/self/clear_refs must be
    writable and must actually reset VmHWM."""
    try:
        read_status()["VmHWM"]
    except (OSError, KeyError) as e:
        return f"no VmHWM in /proc/self/status ({e})"
    if not malloc_trim():
        return "not glibc: malloc_trim is unavailable"
    block = numpy.ones(5 * 10**6)  # 40 MB: VmHWM is now at least 40 MB above the RSS after del
    del block
    malloc_trim()
    try:
        reset_peak()
    except OSError as e:
        return f"cannot write /proc/self/clear_refs ({e})"
    st = read_status()
    if st["VmHWM"] - st["VmRSS"] > 8 * 10**6:
        return "writing 5 to /proc/self/clear_refs does not reset VmHWM (Linux < 4.0?)"
    return None


def measure_call(call, trim=True):
    """One measured call: bytes of peak extra RSS, RSS held with the result alive, and RSS
    retained after the result is dropped (and, with `trim`, the heap trimmed again)."""
    gc.collect()
    if trim:
        malloc_trim()
    reset_peak()
    before = read_status()["VmRSS"]
    out = call()
    st = read_status()
    del out
    gc.collect()
    if trim:
        malloc_trim()
    after = read_status()["VmRSS"]
    return {"peak": st["VmHWM"] - before, "held": st["VmRSS"] - before, "retained": after - before}


def measure(call, repeats=REPEATS, warmups=WARMUPS, steady=True):
    """The warm-up calls, then `repeats` trimmed measurements and (with `steady`) `repeats`
    steady-state ones; lists of bytes.  See the module docstring."""
    for _ in range(warmups):
        call()
    res = {"trimmed": [], "held": [], "retained": [], "steady": []}
    for _ in range(repeats):
        m = measure_call(call, trim=True)
        res["trimmed"].append(m["peak"])
        res["held"].append(m["held"])
        res["retained"].append(m["retained"])
    if steady:
        call()  # the allocator's state after an untrimmed call, as in a loop
        for _ in range(repeats):
            res["steady"].append(measure_call(call, trim=False)["peak"])
    return res


# ------------------------------------------------------------------------------------------------
# Controls: calls whose peak is known
# ------------------------------------------------------------------------------------------------


def _noop():
    return None


def _ones_80mb():
    return numpy.ones(10**7)


def _two_sequential():
    a = numpy.ones(10**7)
    s = float(a[0])
    del a
    b = numpy.ones(10**7)
    return s + float(b[-1])


def _two_alive():
    a = numpy.ones(10**7)
    b = numpy.ones(10**7)
    return float(a[0] + b[-1])


def _in_thread():
    box = []
    t = threading.Thread(target=lambda: box.append(float(numpy.ones(10**7).sum())))
    t.start()
    t.join()
    return box[0]


def _small():
    return numpy.ones(10**5)


def _ten_small():
    blocks = [numpy.ones(20_000) for _ in range(10)]  # 160 kB each: under the mmap threshold
    return len(blocks)


# name -> (call, expected MB)
CONTROLS = {
    "no-op": (_noop, 0.0),
    "numpy.ones(10**7)": (_ones_80mb, 80.0),
    "two 80 MB, one after the other": (_two_sequential, 80.0),
    "two 80 MB alive at once": (_two_alive, 160.0),
    "80 MB in a helper thread": (_in_thread, 80.0),
    "numpy.ones(10**5)": (_small, 0.8),
    "ten numpy.ones(20_000) alive": (_ten_small, 1.6),
}


POLICIES = ("fixed", "glibc")  # fixed mmap threshold (the working set), glibc's defaults


def run_controls(names=None, repeats=REPEATS, policy="fixed", mmap_threshold=MMAP_THRESHOLD):
    """{"status": "ok", "controls": {name: {"expected_mb", "trimmed"/"steady"/...: [bytes]}}},
    or {"status": "unsupported", "reason": ...} where the peak cannot be reset.  With policy
    "fixed" it fixes glibc's thresholds first (`fix_malloc_thresholds`): call it in a fresh
    process.  The steady series is measured with glibc's defaults only."""
    if policy == "fixed" and not fix_malloc_thresholds(mmap_threshold):
        return {"status": "unsupported", "reason": "mallopt failed (not glibc?)"}
    problem = peak_reset_problem()
    if problem:
        return {"status": "unsupported", "reason": problem}
    out = {}
    for name in names or CONTROLS:
        call, expected = CONTROLS[name]
        m = measure(call, repeats=repeats, warmups=1, steady=policy == "glibc")
        out[name] = {"expected_mb": expected, **m}
    return {"status": "ok", "policy": policy, "controls": out}


# ------------------------------------------------------------------------------------------------
# jitgrad's kernel: what its source allocates
# ------------------------------------------------------------------------------------------------

_ITEMSIZE = {"f64": 8, "f32": 4, "i64": 8, "i32": 4, "bool": 1, "c128": 16, "c64": 8, "i8": 1,
             "u8": 1, "i16": 2, "f16": 2}
_ASSIGN = re.compile(r"^(\s*)(\w+) = (.*)$")
_ALLOC = re.compile(r"^np\.(empty|zeros|full|ones)\((.*)$")
_PRODUCT = re.compile(r"^(runtime\.matmul|np\.dot)\(")
_IR_TYPE = re.compile(r"\b(x\d+):(\w+)\[([^\]]*)\]")
_INT_EXPR = re.compile(r"^[\w\s+\-*/%(),]*$")  # an expression of names and integers


def _eval_shape(text, lifted):
    """The value of a shape expression of the kernel, like ``(N0, N1,)``, given the lifted sizes."""
    value = eval(text, {"__builtins__": {"min": min, "max": max}}, dict(lifted))  # noqa: S307
    return (value,) if isinstance(value, int) else tuple(value)


def _split_first_arg(args):
    """`args` is the text after ``np.empty(``: (first argument, the rest)."""
    depth = 0
    for i, ch in enumerate(args):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            if depth == 0:
                return args[:i], ""
            depth -= 1
        elif ch == "," and depth == 0:
            return args[:i], args[i + 1:]
    return args, ""


def kernel_allocations(source, lifted):
    """The arrays a generated kernel allocates: a list of (name, shape, bytes, inside_loop),
    from its source and lifted sizes (module docstring, "jg kernel")."""
    lifted = dict(lifted or {})
    types = {}  # from the IR in the header comment: x6:f64[N0,N1]
    for m in _IR_TYPE.finditer(source):
        dims = tuple(d.strip() for d in m.group(3).split(",") if d.strip())
        types[m.group(1)] = (m.group(2), dims)
    body = source[source.index("def kernel"):] if "def kernel" in source else source
    allocs = []
    names = dict(lifted)  # the sizes, and integers the kernel computes from them (nc0 = ...)
    for line in body.splitlines()[1:]:
        m = _ASSIGN.match(line.split("  #")[0].rstrip())
        if not m:
            continue
        indent, name, rhs = len(m.group(1)), m.group(2), m.group(3).strip()
        inside_loop = indent > 4
        if _INT_EXPR.match(rhs):
            try:
                value = _eval_shape(rhs, names)
                if len(value) == 1 and isinstance(value[0], int):
                    names[name] = value[0]
            except Exception:  # noqa: BLE001  (not a size)
                pass
            continue
        a = _ALLOC.match(rhs)
        if a:
            shape_text, rest = _split_first_arg(a.group(2))
            try:
                shape = _eval_shape(shape_text, names)
            except Exception:  # noqa: BLE001  (a shape this parser cannot size)
                allocs.append((name, None, 0, inside_loop))
                continue
            dtype = rest.rstrip(")").split(",")[-1].strip() or "np.float64"
            itemsize = numpy.dtype(getattr(numpy, dtype.replace("np.", ""), numpy.float64)).itemsize
            allocs.append((name, shape, int(numpy.prod(shape)) * itemsize, inside_loop))
        elif _PRODUCT.match(rhs) or rhs.endswith(".copy()"):
            kind, dims = types.get(name, ("f64", None))
            if dims is None:
                allocs.append((name, None, 0, inside_loop))
                continue
            shape = tuple(int(d) if d.isdigit() else int(lifted[d]) for d in dims)
            allocs.append((name, shape, int(numpy.prod(shape)) * _ITEMSIZE.get(kind, 8),
                           inside_loop))
    return allocs


# ------------------------------------------------------------------------------------------------
# A child: one contender on one problem
# ------------------------------------------------------------------------------------------------


def _nbytes(tree):
    if isinstance(tree, (tuple, list)):
        return sum(_nbytes(t) for t in tree)
    if isinstance(tree, dict):
        return sum(_nbytes(t) for t in tree.values())
    return int(getattr(tree, "nbytes", 0))


def _first_line(exc):
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    msg = lines[0] if lines else ""
    return f"{type(exc).__name__}: {msg}"[:300]


def _xla_memory(problem, data):
    import jax
    import jax.numpy as jnp

    jdata = {k: jax.tree.map(jnp.asarray, v) for k, v in data.items()}
    compiled = jax.jit(jax.value_and_grad(problem.loss(jnp, jdata))).lower(jdata["arg"]).compile()
    ma = compiled.memory_analysis()
    if ma is None:
        return None
    fields = ["temp_size_in_bytes", "output_size_in_bytes", "argument_size_in_bytes",
              "alias_size_in_bytes", "generated_code_size_in_bytes"]
    return {f: getattr(ma, f, None) for f in fields}


def _jitgrad_kernel(problem, data):
    import jitgrad
    import jitgrad.numpy as jnp

    e = jitgrad.explain(problem.loss(jnp, data), data["arg"])
    allocs = kernel_allocations(e.source, e.lifted)
    return {
        "arrays": len(allocs),
        "bytes": sum(a[2] for a in allocs),
        "in_loops": sum(1 for a in allocs if a[3]),
        "unsized": sum(1 for a in allocs if a[1] is None),
        "list": [[a[0], list(a[1]) if a[1] else None, a[2]] for a in allocs],
        "lifted": {k: v for k, v in (e.lifted or {}).items()},
    }


def _tracemalloc_peak(call, repeats):
    import tracemalloc

    tracemalloc.start()
    peaks = []
    try:
        for _ in range(repeats):
            gc.collect()
            base = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            out = call()
            peaks.append(tracemalloc.get_traced_memory()[1] - base)
            del out
    finally:
        tracemalloc.stop()
    return peaks


def child(problem_name, contender, repeats, policy="fixed", mmap_threshold=MMAP_THRESHOLD):
    """Runs in a fresh interpreter: build, warm up, measure; returns a JSON-able dict.  Policy
    "fixed": glibc's thresholds fixed (before anything is allocated), trimmed series and the
    cross-checks; "glibc": glibc's defaults, trimmed and steady series."""
    res = {"problem": problem_name, "contender": contender, "policy": policy, "status": "ok"}
    if policy == "fixed" and not fix_malloc_thresholds(mmap_threshold):
        return {**res, "status": "error", "note": "mallopt failed (not glibc?)"}
    from . import run

    problem = problems.BY_NAME[problem_name]
    data = problem.make_data()
    t0 = time.perf_counter()
    reason = peak_reset_problem()
    if reason:
        return {**res, "status": "error", "note": reason}
    try:
        call, _ = run.BUILDERS[contender](problem, data)
    except run.Missing as e:
        return {**res, "status": "missing", "note": str(e)}
    except Exception as e:  # noqa: BLE001  (reported in the cell)
        return {**res, "status": "error", "note": _first_line(e)}
    try:
        res.update(measure(call, repeats=repeats, steady=policy == "glibc"))
    except Exception as e:  # noqa: BLE001
        return {**res, "status": "error", "note": _first_line(e)}
    res["measure_s"] = time.perf_counter() - t0
    if policy != "fixed":
        return res
    # Cross-checks, after the measurements so they cannot disturb them.
    try:
        if contender == "jitgrad":
            res["kernel"] = _jitgrad_kernel(problem, data)
        elif contender == "jax":
            res["xla"] = _xla_memory(problem, data)
        elif contender in ("hand-numpy", "autograd"):
            res["tracemalloc"] = _tracemalloc_peak(call, repeats)
    except Exception as e:  # noqa: BLE001
        res["cross_check_error"] = _first_line(e)
    return res


def _run_child(argv, env, timeout=CHILD_TIMEOUT_S):
    cmd = [sys.executable, "-m", "benchmarks.memory", *argv]
    try:
        proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"status": "error", "note": f"timed out after {timeout} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        err = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()] or ["(no output)"]
        return {"status": "error", "note": f"child exited {proc.returncode}: {err[-1][:300]}"}
    return json.loads(lines[-1])


# ------------------------------------------------------------------------------------------------
# The parent: run every child, print the tables
# ------------------------------------------------------------------------------------------------


def _mb(b):
    if b is None:
        return "-"
    x = b / MB
    if x == 0:
        return "0"
    if abs(x) < 0.01:
        return f"{x:.4f}"
    if abs(x) < 10:
        return f"{x:.2f}"
    if abs(x) < 1000:
        return f"{x:.1f}"
    return f"{x:,.0f}"


def _median(xs):
    return statistics.median(xs) if xs else None


def _cell(r, key="trimmed"):
    if r is None:
        return ""
    if r["status"] == "missing":
        return "-"
    if r["status"] == "error":
        return "ERROR"
    xs = r.get(key) or []
    if not xs:
        return "-"
    text = _mb(_median(xs))
    # Repeats that disagree by more than 1 MB and 10%: the call is not repeatable, say so.
    if max(xs) - min(xs) > max(1 * MB, 0.1 * max(xs)):
        text += " ~"
    return text


def print_table(header, rows):
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
    for r in rows:
        print("| " + " | ".join(str(c) for c in r) + " |")


def report_controls(controls):
    print("Validation: controls, MB of peak extra RSS (median; the repeats in brackets)")
    rows = {}  # control -> [name, expected, working set, glibc trimmed, glibc loop]
    for policy, ctl in controls.items():
        if ctl.get("status") != "ok":
            print(f"  controls ({policy}) could not run: {ctl.get('reason') or ctl.get('note')}")
            continue
        for name, c in ctl["controls"].items():
            row = rows.setdefault(name, [name, f"{c['expected_mb']:.1f}", "-", "-", "-"])
            trimmed = f"{_mb(_median(c['trimmed']))} ({', '.join(_mb(x) for x in c['trimmed'])})"
            if policy == "fixed":
                row[2] = trimmed
            else:
                row[3], row[4] = trimmed, _mb(_median(c["steady"]))
    if rows:
        print_table(["control", "expected", "working set", "glibc: trimmed", "glibc: loop"],
                    list(rows.values()))


def report(results, args, controls, env):
    print()
    print("Machine and versions")
    for k, v in env.items():
        print(f"  {k:<11} {v}")
    print()
    report_controls(controls)

    names = args.contenders
    print()
    print(f"Peak extra memory of one warm value-and-gradient call (working set), MB = 10^6 bytes, "
          f"median of {args.repeats}")
    header = ["problem", "floor (grad)", "inputs"] + names + ["jg kernel allocs", "XLA temp+out"]
    rows = []
    for p in args.problems:
        row_res = results[p.name]
        info = row_res["_info"]
        k = (row_res.get("jitgrad") or {}).get("fixed", {}).get("kernel")
        kcell = f"{k['arrays']} / {_mb(k['bytes'])}" if k else "-"
        jx = (row_res.get("jax") or {}).get("fixed", {}).get("xla")
        xcell = "-"
        if jx and jx.get("temp_size_in_bytes") is not None:
            xcell = _mb(jx["temp_size_in_bytes"] + (jx.get("output_size_in_bytes") or 0))
        rows.append([p.name, _mb(info["grad_bytes"]), _mb(info["input_bytes"])]
                    + [_cell((row_res.get(c) or {}).get("fixed")) for c in names]
                    + [kcell, xcell])
    print_table(header, rows)
    print(f"  glibc's thresholds fixed (blocks >= {args.mmap_threshold / 1024:g} KiB mmapped, "
          "unmapped at free; heap tops trimmed above 128 KiB), heap trimmed and peak reset "
          "before the call")
    print("  floor: bytes of the returned gradient, the least any call can allocate;  inputs: "
          "argument and closure data, for scale")
    print("  jg kernel allocs: arrays / MB that jitgrad's generated kernel allocates (np.empty, "
          "np.full, matmul results), gradient included")
    print("  XLA temp+out: memory_analysis() of the compiled jax call;  '-' not installed;  "
          "ERROR see Notes;  '~' repeats differ by > 1 MB and 10%")

    if not args.quick:
        print()
        print("With glibc's default malloc settings, MB: trimmed (heap trimmed before the call, as "
              "above) / loop (no trim: the call in a loop)")
        rows = []
        for p in args.problems:
            row = [p.name]
            for c in names:
                r = (results[p.name].get(c) or {}).get("glibc")
                row.append(_cell(r) if not r or r["status"] != "ok"
                           else f"{_cell(r)} / {_cell(r, 'steady')}")
            rows.append(row)
        print_table(["problem"] + names, rows)

    print()
    print("Retained: RSS after the call, result dropped and heap trimmed, less RSS before it, MB "
          "(working-set series; memory a library keeps: a pool, a cache, a leak)")
    rows = [[p.name] + [_cell((results[p.name].get(c) or {}).get("fixed"), "retained")
                        for c in names] for p in args.problems]
    print_table(["problem"] + names, rows)

    cross = []
    for p in args.problems:
        for c in ("hand-numpy", "autograd"):
            r = (results[p.name].get(c) or {}).get("fixed") or {}
            if r.get("tracemalloc"):
                cross.append([p.name, c, _cell(r), _mb(_median(r["tracemalloc"]))])
    if cross:
        print()
        print("Cross-check: RSS peak (working set) against tracemalloc's peak of NumPy's buffers, "
              "MB")
        print_table(["problem", "contender", "RSS peak", "tracemalloc peak"], cross)

    notes = []
    for p in args.problems:
        for c in names:
            for policy, r in (results[p.name].get(c) or {}).items():
                if r.get("status") == "error":
                    notes.append(f"  ERROR {c} on {p.name} ({policy}): {r.get('note')}")
                if r.get("cross_check_error"):
                    notes.append(f"  cross-check of {c} on {p.name} failed: "
                                 f"{r['cross_check_error']}")
                k = r.get("kernel")
                if k and (k["in_loops"] or k["unsized"]):
                    notes.append(f"  jitgrad kernel on {p.name}: {k['in_loops']} allocation(s) "
                                 f"inside loops, {k['unsized']} of unknown size (not counted)")
    if notes:
        print()
        print("Notes")
        print("\n".join(notes))


def _problem_info(problem):
    data = problem.make_data()
    return {"grad_bytes": _nbytes(data["arg"]), "input_bytes": _nbytes(data)}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.memory",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--only", metavar="PROBLEM[,...]",
                    help="problems to run, from: " + ", ".join(problems.BY_NAME))
    ap.add_argument("--contenders", metavar="NAME[,...]",
                    help="contenders to run, from: " + ", ".join(CONTENDERS))
    ap.add_argument("--json", metavar="PATH", help="also write every measurement to this file")
    ap.add_argument("--quick", action="store_true",
                    help="1 repeat instead of 3, working set only (no glibc-defaults series)")
    ap.add_argument("--controls", choices=POLICIES, metavar="POLICY",
                    help="only run the controls in this process (fixed or glibc), as a JSON line")
    ap.add_argument("--child", nargs=3, metavar=("PROBLEM", "CONTENDER", "POLICY"),
                    help=argparse.SUPPRESS)
    ap.add_argument("--mmap-threshold", type=int, default=MMAP_THRESHOLD, metavar="BYTES",
                    help="glibc's mmap threshold in the working-set series (default 1 MiB; see "
                    "the module docstring)")
    ap.add_argument("--repeats", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.repeats = args.repeats or (1 if args.quick else REPEATS)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in problems.BY_NAME]
        if unknown:
            ap.error(f"unknown problem(s) {', '.join(unknown)}; choose from "
                     + ", ".join(problems.BY_NAME))
        args.problems = [p for p in problems.PROBLEMS if p.name in names]
    else:
        args.problems = list(problems.PROBLEMS)
    if args.contenders:
        names = [n.strip() for n in args.contenders.split(",") if n.strip()]
        unknown = [n for n in names if n not in CONTENDERS]
        if unknown:
            ap.error(f"unknown contender(s) {', '.join(unknown)}; choose from "
                     + ", ".join(CONTENDERS))
        args.contenders = [c for c in CONTENDERS if c in names]
    else:
        args.contenders = list(CONTENDERS)
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        problem, contender, policy = args.child
        print(json.dumps(child(problem, contender, args.repeats, policy, args.mmap_threshold)))
        return 0
    if args.controls:
        print(json.dumps(run_controls(repeats=args.repeats, policy=args.controls,
                                      mmap_threshold=args.mmap_threshold)))
        return 0

    from . import run

    started = time.perf_counter()
    policies = POLICIES[:1] if args.quick else POLICIES
    cache = tempfile.mkdtemp(prefix="jitgrad-memory-cache-")
    env = dict(os.environ, JITGRAD_CACHE_DIR=cache)
    common = ["--repeats", str(args.repeats), "--mmap-threshold", str(args.mmap_threshold)]
    results, controls = {}, {}
    try:
        print(f"[{time.perf_counter() - started:6.1f} s] controls", flush=True)
        for policy in policies:
            controls[policy] = _run_child(
                ["--controls", policy, *common], env)
        for p in args.problems:
            print(f"[{time.perf_counter() - started:6.1f} s] {p.name}: ", end="", flush=True)
            results[p.name] = {"_info": _problem_info(p)}
            for c in args.contenders:
                print(c, end=" ", flush=True)
                results[p.name][c] = {}
                for policy in policies:
                    t0 = time.perf_counter()
                    r = _run_child(
                        ["--child", p.name, c, policy, *common], env)
                    r["child_s"] = time.perf_counter() - t0
                    results[p.name][c][policy] = r
            print(flush=True)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    envinfo = run.environment()
    envinfo["kernel"] = os.uname().release
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            envinfo["THP"] = f.read().strip()
    except OSError:
        pass
    report(results, args, controls, envinfo)
    total = time.perf_counter() - started
    print(f"\nTotal run time {total:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": envinfo, "repeats": args.repeats, "unit": "bytes",
                       "mmap_threshold": args.mmap_threshold,
                       "controls": controls, "results": results, "total_s": total}, f, indent=1)
        print(f"Wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
