"""Run autograd's example programs under autograd and under jitgrad; compare what they print.

    python -m benchmarks.autograd_examples                    # all 31 examples, 120 s each
    python -m benchmarks.autograd_examples --timeout 60 --json out.json
    python -m benchmarks.autograd_examples --only rosenbrock,tanh,fluidsim/wing
    python -m benchmarks.autograd_examples --from-json out.json   # print a saved run's report

What it does
------------
1. Extracts `examples/` (with the helper modules and images) from an autograd git repository
   (`--autograd-repo`, a bare mirror or a checkout; `git clone https://github.com/HIPS/autograd`)
   into two temporary trees.  Nothing of autograd's is kept in this repository.
2. In the second tree, rewrites `autograd` to `jitgrad` in import statements only (found with
   `ast`: `import autograd.numpy as np`, `from autograd.misc.optimizers import adam`, ...); every
   other character is unchanged, line numbers too.  One extra: a bare `import autograd.x.y` also
   binds the name `autograd`, which the program may use later (`autograd.scipy.signal.convolve`),
   so it becomes `import jitgrad.x.y, jitgrad as autograd`.
3. Runs every example twice, autograd first, each in a fresh `nice -n 10` subprocess with a
   wall-clock timeout (`--timeout`, default 120 s), a new or given (`--warm-cache`) jitgrad kernel
   cache, `MPLBACKEND=Agg`, and a prelude (see RUNNER) that makes `plt.show/pause/draw` no-ops and
   calls `numpy.random.seed(0)`.  An example calling `RandomState()` without a seed (convnet)
   gets seed 0 in both runs.  The jitgrad run sees the autograd tree's file as its `__file__`,
   so the examples that train on their own source text (rnn, lstm, hmm_em) read the same text.
4. The MNIST examples (neural_net, convnet, variational_autoencoder, generative_adversarial_net)
   cannot download MNIST here: both trees get a replacement `data_mnist.py` returning seeded random
   uint8 images and labels of MNIST's shapes, `--mnist-train` (1000) train and `--mnist-test`
   (200) test images.  Their numbers are about random data, not digits.
5. Compares stdout line by line, over the lines both runs printed (the unfinished last line of
   a run that timed out or failed is compared as a prefix of the other's).  All numbers are
   extracted from each line and paired in order; a pair agrees when
   |a - b| <= rtol * max(|a|, |b|) + atol + one unit in the last printed digit of the coarser one
   (`print(f"{x:.6f}")` cannot agree better than that).  A run that times out is first sent
   SIGUSR1, on which it writes its Python stack (faulthandler): that says where it was.

Reading the output
------------------
One Markdown row per example:

* `autograd`, `jitgrad`: `ok` (exited 0), `timeout (N lines)` (killed after `--timeout` having
  printed N lines), or `error` (the exception type; the message is in the list below the table).
* `verdict`: `match` (every compared number agrees; when a run timed out, over the lines both
  printed, at least one number), `no output` (both finished without error and printed nothing),
  `MISMATCH (line k)` (the first line, 1-based, whose numbers disagree), `jitgrad error`,
  `jitgrad slow` (jitgrad timed out before printing a number to compare, where autograd printed
  more lines), `autograd error` (the example fails as written; the lines before it are compared).
* `lines`: lines compared; `numbers`: agreeing / compared; `max rel diff`: the largest
  |a - b| / max(|a|, |b|) among pairs that differ by more than atol.
* `t autograd`, `t jitgrad`: wall time of each run (the jitgrad one includes compiling).

Under the table, each example that does not match gets its first missing feature: for an
import error the module or name jitgrad lacks (`jitgrad.tracer`, `jitgrad.extend.Box`), for a
TracingError the function it names, otherwise the exception; with the example's line and the
innermost jitgrad frame.  A mismatch says whether the numbers came apart at once or drifted
(round-off grown by an optimizer over many iterations); a slow run says where it was at the
timeout (e.g. in Numba's compiler).  "Other differences" lists text that differs besides its
numbers (`array(1.0)` against `1.0`) and matches cut short by a jitgrad timeout.
`--json out.json` writes all of it plus both runs' output.
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass, field

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_AUTOGRAD_REPO = "/work/.mirror/HIPS+autograd/repo"
HELPER_MODULES = {"__init__", "data", "data_mnist"}   # under examples/, not programs themselves
MNIST_EXAMPLES = {"neural_net", "convnet", "variational_autoencoder",
                  "generative_adversarial_net"}

# A data_mnist.py written into both trees in place of autograd's (which downloads MNIST).
FAKE_DATA_MNIST = '''"""Written by jitgrad's benchmarks/autograd_examples.py in place of autograd's
data_mnist.py (which downloads MNIST): seeded random uint8 images and labels of MNIST's shapes."""
import numpy as np


def mnist():
    rs = np.random.RandomState(12345)
    train_images = rs.randint(0, 256, size=({n_train}, 28, 28)).astype(np.uint8)
    train_labels = rs.randint(0, 10, size={n_train}).astype(np.uint8)
    test_images = rs.randint(0, 256, size=({n_test}, 28, 28)).astype(np.uint8)
    test_labels = rs.randint(0, 10, size={n_test}).astype(np.uint8)
    return train_images, train_labels, test_images, test_labels
'''

# Runs one example: python runner.py SCRIPT FILE_ATTR ERROR_JSON SEED_UNSEEDED STACK_FILE
# (SIGUSR1 writes the Python stack to STACK_FILE: the harness sends it at the timeout.)
RUNNER = r'''"""Runs one autograd example (written by benchmarks/autograd_examples.py)."""
import builtins
import faulthandler
import json
import os
import signal
import sys
import traceback
import types


def prelude(seed_unseeded):
    import numpy
    numpy.random.seed(0)
    if seed_unseeded:                       # RandomState() draws its seed from the OS
        class RandomState(numpy.random.RandomState):
            def __init__(self, seed=None):
                super().__init__(0 if seed is None else seed)
        numpy.random.RandomState = RandomState
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    def noop(*args, **kwargs):
        return None
    plt.show = plt.pause = plt.draw = noop


def describe(exc):
    frames = [{"file": f.filename, "line": f.lineno, "function": f.name, "code": f.line}
              for f in traceback.extract_tb(exc.__traceback__)]
    kind = type(exc)
    qualname = kind.__qualname__ if kind.__module__ == "builtins" else \
        kind.__module__ + "." + kind.__qualname__
    return {"type": kind.__name__, "qualified_type": qualname, "message": str(exc),
            "name": getattr(exc, "name", None) if isinstance(exc, ImportError) else None,
            "frames": frames}


def main():
    script, file_attr, error_path, seed_unseeded, stack_path = sys.argv[1:6]
    global STACK_FILE
    STACK_FILE = open(stack_path, "w")
    faulthandler.register(signal.SIGUSR1, file=STACK_FILE, all_threads=False)
    prelude(seed_unseeded == "1")
    sys.argv = [file_attr]
    sys.path[0] = os.path.dirname(script)
    with open(script, encoding="utf-8") as f:
        code = compile(f.read(), script, "exec")
    module = types.ModuleType("__main__")
    module.__file__ = file_attr
    module.__builtins__ = builtins
    sys.modules["__main__"] = module
    try:
        exec(code, module.__dict__)
    except SystemExit:
        raise
    except BaseException as exc:
        with open(error_path, "w") as f:
            json.dump(describe(exc), f)
        sys.stdout.flush()
        traceback.print_exc()
        sys.exit(1)


main()
'''


# --------------------------------------------------------------------------- the examples


def git(repo: str, *args: str, text: bool = True):
    return subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True,
                          text=text).stdout


def locate_autograd_repo(path: str | None) -> str:
    """The autograd repository to read examples from, or exit with how to get one."""
    candidate = path or (DEFAULT_AUTOGRAD_REPO if os.path.isdir(DEFAULT_AUTOGRAD_REPO) else None)
    if candidate is None or not os.path.isdir(candidate):
        sys.exit("autograd's repository is needed for its examples/: get one with\n"
                 "    git clone https://github.com/HIPS/autograd\n"
                 "and pass it as --autograd-repo PATH" +
                 (f"\n(not a directory: {candidate})" if candidate else ""))
    return candidate


def extract_examples(repo: str, dest: str) -> str:
    """Writes the repository's committed examples/ under dest; returns a description of the
    source (the commit).  A directory that is not a git repository is copied as it is."""
    try:
        commit = git(repo, "rev-parse", "HEAD").strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        shutil.copytree(os.path.join(repo, "examples"), os.path.join(dest, "examples"))
        return f"{repo} (not a git repository; copied)"
    archive = git(repo, "archive", "--format=tar", commit, "examples", text=False)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:                                   # Python < 3.10.12 / 3.11.4
            tar.extractall(dest)
    return f"{repo} @ {commit[:12]}"


def list_examples(examples_dir: str) -> list[str]:
    """Example programs as names relative to examples/ without .py: 'neural_net',
    'fluidsim/wing'."""
    names = []
    for root, _dirs, files in os.walk(examples_dir):
        for fname in files:
            rel = os.path.relpath(os.path.join(root, fname), examples_dir)
            name = rel[:-3].replace(os.sep, "/")
            if fname.endswith(".py") and name not in HELPER_MODULES:
                names.append(name)
    return sorted(names)


# --------------------------------------------------------------------------- import rewriting


def _is_autograd(module: str | None) -> bool:
    return module is not None and (module == "autograd" or module.startswith("autograd."))


def rewrite_imports(source: str) -> tuple[str, list[str]]:
    """Changes `autograd` to `jitgrad` in the import statements of source, nothing else.
    Returns the new source and notes on the rewrites that bind the name `autograd`."""
    lines = source.splitlines(keepends=True)
    edits: list[tuple[int, int, int, str]] = []      # (line index, byte column, length, text)
    notes = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not _is_autograd(alias.name):
                    continue
                new = "jitgrad" + alias.name[len("autograd"):]
                if alias.asname is None:        # `import autograd.x` binds `autograd`
                    new += ", jitgrad as autograd"
                    notes.append(f"line {alias.lineno}: `import {alias.name}` became "
                                 f"`import {new}`")
                edits.append((alias.lineno - 1, alias.col_offset, len(alias.name), new))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and _is_autograd(node.module):
            raw = lines[node.lineno - 1].encode()
            match = re.compile(rb"from\s+(autograd)\b").search(raw, node.col_offset)
            edits.append((node.lineno - 1, match.start(1), len("autograd"), "jitgrad"))
    for index, col, length, new in sorted(edits, reverse=True):
        raw = lines[index].encode()
        lines[index] = (raw[:col] + new.encode() + raw[col + length:]).decode()
    return "".join(lines), notes


def build_trees(repo: str, workdir: str, n_train: int, n_test: int):
    """Two copies of examples/: as written, and with imports rewritten.  Returns
    (autograd examples dir, jitgrad examples dir, source description, notes per example)."""
    trees = {}
    for flavour in ("autograd", "jitgrad"):
        root = os.path.join(workdir, flavour)
        os.makedirs(root)
        source = extract_examples(repo, root)
        trees[flavour] = os.path.join(root, "examples")
        with open(os.path.join(trees[flavour], "data_mnist.py"), "w") as f:
            f.write(FAKE_DATA_MNIST.format(n_train=n_train, n_test=n_test))
    notes: dict[str, list[str]] = {}
    for dirpath, _dirs, files in os.walk(trees["jitgrad"]):
        for fname in files:
            if not fname.endswith(".py") or fname == "data_mnist.py":
                continue
            path = os.path.join(dirpath, fname)
            with open(path, encoding="utf-8") as f:
                new, file_notes = rewrite_imports(f.read())
            with open(path, "w", encoding="utf-8") as f:
                f.write(new)
            if file_notes:
                name = os.path.relpath(path, trees["jitgrad"])[:-3].replace(os.sep, "/")
                notes[name] = file_notes
    return trees["autograd"], trees["jitgrad"], source, notes


# --------------------------------------------------------------------------- running


@dataclass
class Run:
    status: str                      # ok | timeout | error
    seconds: float
    returncode: int | None
    stdout: str
    stderr: str
    error: dict | None = None        # from the runner: type, message, frames
    lines: list[str] = field(default_factory=list)   # complete stdout lines
    partial: str = ""                # the unfinished last line of a run that did not finish
    stack: str = ""                  # where a timed-out run was (faulthandler's dump)

    def label(self) -> str:
        if self.status == "timeout":
            return f"timeout ({len(self.lines)} lines)"
        if self.status == "error":
            return f"error: {self.error['type']}" if self.error else \
                f"error (exit {self.returncode})"
        return "ok"


def run_example(runner: str, script: str, file_attr: str, env: dict, timeout: float,
                seed_unseeded: bool) -> Run:
    """Runs one example in a fresh subprocess (its own process group, killed at the timeout)."""
    cwd = os.path.dirname(script)
    out_path, err_path, exc_path, stack_path = (
        script + ext for ext in (".stdout", ".stderr", ".exc.json", ".stack"))
    cmd = ["nice", "-n", "10", sys.executable, runner, script, file_attr, exc_path,
           "1" if seed_unseeded else "0", stack_path]
    start = time.perf_counter()
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            returncode = proc.wait(timeout=timeout)
            status = "ok" if returncode == 0 else "error"
        except subprocess.TimeoutExpired:
            seconds = time.perf_counter() - start
            stop_with_stack(proc)
            returncode, status = None, "timeout"
        except BaseException:  # interrupted (Ctrl-C, SIGTERM): the run is in its own session
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        else:
            seconds = time.perf_counter() - start
    stdout, stderr, stack = (open(p, errors="replace").read() if os.path.exists(p) else ""
                             for p in (out_path, err_path, stack_path))
    error = json.load(open(exc_path)) if os.path.exists(exc_path) else None
    *lines, rest = stdout.split("\n")      # rest: '' or an unfinished last line
    partial = ""
    if rest and status == "ok":
        lines.append(rest)
    else:
        partial = rest
    return Run(status, seconds, returncode, stdout, stderr, error, lines, partial, stack)


def stop_with_stack(proc: subprocess.Popen) -> None:
    """Asks a timed-out run for its Python stack (SIGUSR1), then kills its process group."""
    try:
        os.kill(proc.pid, signal.SIGUSR1)
        proc.wait(timeout=2)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def subprocess_env(cache_dir: str) -> dict:
    from . import EXECUTION_DEFAULTED

    env = dict(os.environ)
    if EXECUTION_DEFAULTED:  # the examples run as their users run them: the default tiers
        env.pop("JITGRAD_EXECUTION", None)
    env.update(MPLBACKEND="Agg", PYTHONUNBUFFERED="1", PYTHONHASHSEED="0",
               JITGRAD_CACHE_DIR=cache_dir, PYTHONDONTWRITEBYTECODE="1",
               PYTHONPATH=os.pathsep.join(
                   [REPO_ROOT] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])))
    return env


# --------------------------------------------------------------------------- comparing

NUMBER = re.compile(r"(?<![\w.])[-+]?(?:nan|inf|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?![\w])")


def numbers_in(line: str) -> list[str]:
    return NUMBER.findall(line)


def last_digit_unit(token: str) -> float:
    """One unit in the last printed digit of a token with a decimal point, else 0 (integers
    and nan/inf are exact)."""
    mantissa, _, exponent = token.lower().partition("e")
    if "." not in mantissa:
        return 0.0
    decimals = len(mantissa.split(".")[1])
    return 10.0 ** (int(exponent or 0) - decimals)


def numbers_agree(a: str, b: str, rtol: float, atol: float) -> tuple[bool, float]:
    """Whether two printed numbers agree, and their relative difference (0 within atol)."""
    x, y = float(a), float(b)
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y), 0.0 if math.isnan(x) == math.isnan(y) else 1.0
    if math.isinf(x) or math.isinf(y):
        return x == y, 0.0 if x == y else 1.0
    diff, scale = abs(x - y), max(abs(x), abs(y))
    tolerance = rtol * scale + atol + max(last_digit_unit(a), last_digit_unit(b))
    return diff <= tolerance, (diff / scale if diff > atol else 0.0)


def raw_rel_diff(x: float, y: float) -> float:
    """|x - y| / max(|x|, |y|), without any floor (0 when equal, nan and inf included)."""
    if x == y or (math.isnan(x) and math.isnan(y)):
        return 0.0
    if not (math.isfinite(x) and math.isfinite(y)):
        return 1.0
    return abs(x - y) / max(abs(x), abs(y))


@dataclass
class Comparison:
    lines: int = 0
    numbers: int = 0
    agreeing: int = 0
    max_rel_diff: float = 0.0
    first_mismatch: int | None = None          # 1-based line
    first_mismatch_text: tuple[str, str] | None = None
    text_diffs: list = field(default_factory=list)   # (line, autograd, jitgrad): words differ
    line_count_differs: bool = False           # both finished, with different line counts
    first_difference: tuple | None = None      # (line, rel diff): the first number not identical
    line_rel_diffs: list = field(default_factory=list)  # each line's largest raw rel diff


def paired_lines(a: Run, j: Run):
    """(autograd line, jitgrad line, complete) for the lines both printed.  When the run with
    fewer lines stopped in the middle of a line, that unfinished line is paired, as a prefix
    (complete=False), with the other's line at that place."""
    n = min(len(a.lines), len(j.lines))
    pairs = [(la, lj, True) for la, lj in zip(a.lines, j.lines)]
    if all(r.partial for r in (a, j) if len(r.lines) == n):
        la, lj = (r.lines[n] if len(r.lines) > n else r.partial for r in (a, j))
        pairs.append((la, lj, False))
    return pairs


def compare(a: Run, j: Run, rtol: float, atol: float) -> Comparison:
    c = Comparison()
    c.line_count_differs = a.status == j.status == "ok" and len(a.lines) != len(j.lines)
    for index, (la, lj, complete) in enumerate(paired_lines(a, j)):
        c.lines += 1
        na, nj = numbers_in(la), numbers_in(lj)
        if not complete:                       # a prefix: its last number may be cut short
            k = max(min(len(na), len(nj)) - 1, 0)
            na, nj = na[:k], nj[:k]
        ok, line_max = len(na) == len(nj), 0.0
        for x, y in zip(na, nj):
            agree, rel = numbers_agree(x, y, rtol, atol)
            c.numbers += 1
            c.agreeing += agree
            c.max_rel_diff = max(c.max_rel_diff, rel)
            raw = raw_rel_diff(float(x), float(y))
            line_max = max(line_max, raw)
            if raw and c.first_difference is None:
                c.first_difference = (index + 1, raw)
            ok = ok and agree
        c.line_rel_diffs.append(line_max)
        if complete and NUMBER.sub("#", la) != NUMBER.sub("#", lj):
            c.text_diffs.append((index + 1, la, lj))
        if not ok and c.first_mismatch is None:
            c.first_mismatch, c.first_mismatch_text = index + 1, (la, lj)
    return c


def verdict(a: Run, j: Run, c: Comparison) -> str:
    if a.status == "error":
        return "autograd error"
    if j.status == "error":
        return "jitgrad error" + (f" (after a mismatch at line {c.first_mismatch})"
                                  if c.first_mismatch is not None else "")
    if c.first_mismatch is not None:
        return f"MISMATCH (line {c.first_mismatch})"
    if c.line_count_differs:
        return "MISMATCH (line count)"
    if a.status == j.status == "ok":
        return "match" if c.lines else "no output"
    if c.numbers == 0:     # a run timed out before printing a number both could compare
        return "jitgrad slow" if len(j.lines) < len(a.lines) else "no numbers before timeout"
    return "match"


# --------------------------------------------------------------------------- errors


def first_missing(error: dict | None, run: Run) -> str:
    """The first thing jitgrad lacks that stopped the run, in a few words."""
    if error is None:
        tail = [line for line in run.stderr.strip().splitlines() if line.strip()]
        return tail[-1] if tail else f"exit code {run.returncode}, no exception recorded"
    kind, message = error["type"], error["message"]
    first_line = message.strip().splitlines()[0] if message.strip() else ""
    first_line = re.sub(r"\s*\(at [^()]*\)", "", first_line)   # the location is given apart
    patterns = [
        (r"No module named '([\w.]+)'", "module {0}"),
        (r"cannot import name '(\w+)' from '([\w.]+)'", "{1}.{0}"),
        (r"module '([\w.]+)' has no attribute '(\w+)'", "{0}.{1}"),
        (r"'(\w+)' object has no attribute '(\w+)'", "{0}.{1} (attribute)"),
        (r"^((?:numpy|ndarray|scipy|jitgrad)\.[\w.]+)\b.* is not supported",
         "{0} is not supported"),
    ]
    for pattern, template in patterns:
        m = re.search(pattern, first_line)
        if m:
            return f"{kind}: " + template.format(*m.groups())
    return f"{kind}: {first_line}"[:200]


STACK_FRAME = re.compile(r'File "([^"]+)", line (\d+) in (\S+)')


def timeout_location(run: Run, tree: str) -> str:
    """Where a timed-out run was: its innermost frames in the example and in jitgrad (and in
    Numba, when it was compiling), from the stack it dumped at the timeout."""
    frames = STACK_FRAME.findall(run.stack)          # innermost first
    jitgrad_dir = os.path.join(REPO_ROOT, "jitgrad") + os.sep
    found = {}
    for path, line, func in frames:
        for key, hit in (("example", path.startswith(tree + os.sep)),
                         ("jitgrad", path.startswith(jitgrad_dir)),
                         ("numba", f"{os.sep}numba{os.sep}" in path)):
            if hit and key not in found:
                rel = os.path.relpath(path, tree if key == "example" else REPO_ROOT)
                if key == "numba":
                    rel = "numba" + path.split(f"{os.sep}numba", 1)[1]
                found[key] = f"{rel}:{line} ({func})"
    return " -> ".join(found[k] for k in ("example", "jitgrad", "numba") if k in found)


def frame_of(error: dict | None, tree: str, inside: bool) -> str:
    """The innermost frame in the example tree (inside=True) or in jitgrad, as file:line."""
    if not error:
        return ""
    jitgrad_dir = os.path.join(REPO_ROOT, "jitgrad") + os.sep
    for frame in reversed(error["frames"]):
        path = frame["file"]
        hit = path.startswith(tree + os.sep) if inside else path.startswith(jitgrad_dir)
        if hit:
            rel = os.path.relpath(path, tree if inside else REPO_ROOT)
            code = f" `{frame['code']}`" if inside and frame["code"] else ""
            return f"{rel}:{frame['line']} ({frame['function']}){code}"
    return ""


# --------------------------------------------------------------------------- report


def fmt_seconds(s: float) -> str:
    return f"{s:.1f} s"


def markdown_table(results: list[dict]) -> str:
    header = ["example", "autograd", "jitgrad", "verdict", "lines", "numbers", "max rel diff",
              "t autograd", "t jitgrad"]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        c = r["comparison"]
        name = r["name"] + (" (random MNIST)" if r["name"] in MNIST_EXAMPLES else "")
        cells = [name, r["autograd"]["label"], r["jitgrad"]["label"], r["verdict"],
                 str(c["lines"]), f"{c['agreeing']}/{c['numbers']}",
                 f"{c['max_rel_diff']:.1e}" if c["numbers"] else "-",
                 fmt_seconds(r["autograd"]["seconds"]), fmt_seconds(r["jitgrad"]["seconds"])]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def failure_list(results: list[dict]) -> str:
    out = []
    for r in results:
        if r["verdict"] in ("match", "no output"):
            continue
        item = f"* **{r['name']}** ({r['verdict']}): "
        if r["verdict"].startswith("jitgrad error"):
            item += r["first_missing"]
            where = [w for w in (r["example_frame"], r["jitgrad_frame"]) if w]
            if where:
                item += "; at " + "; in ".join(where)
        elif r["verdict"] == "autograd error":
            item += "the example fails under autograd: " + r["autograd_error"]
            if r["autograd_frame"]:
                item += "; at " + r["autograd_frame"]
            if r["first_missing"]:
                item += "; jitgrad: " + r["first_missing"]
        elif r["verdict"].startswith("MISMATCH"):
            text = r["comparison"]["first_mismatch_text"]
            item += (f"autograd printed `{text[0].strip()}`, jitgrad `{text[1].strip()}`"
                     if text else "the runs printed different numbers of lines")
            item += drift(r["comparison"])
        else:
            item += (f"jitgrad printed {len(r['jitgrad']['lines'])} line(s) in "
                     f"{fmt_seconds(r['jitgrad']['seconds'])}, autograd "
                     f"{len(r['autograd']['lines'])}")
            if r["jitgrad_timeout_at"]:
                item += "; at the timeout it was in " + r["jitgrad_timeout_at"]
        if r["verdict"].startswith("jitgrad error") and r["comparison"]["first_mismatch"]:
            item += drift(r["comparison"])
        out.append(item)
        for note in r["notes"]:
            out.append(f"  * note: {note}")
    return "\n".join(out)


def drift(c: dict) -> str:
    """How the numbers came apart: the first line at which the largest relative difference in a
    line reaches each of 1e-12, 1e-9, 1e-6 (a slow climb is round-off grown by iterations; a
    jump from ~1e-16 straight to the mismatch is a different result)."""
    if not c["first_difference"]:
        return ""
    line, rel = c["first_difference"]
    steps = [f"{rel:.0e} at line {line}"]
    for threshold in (1e-12, 1e-9, 1e-6):
        for index, d in enumerate(c["line_rel_diffs"][line:], line + 1):
            if d >= threshold:
                step = f"{d:.0e} at line {index}"
                if step not in steps:
                    steps.append(step)
                break
    return " (relative differences: " + ", ".join(steps) + ")"


def notes_list(results: list[dict]) -> str:
    """Other differences worth knowing: text that differs besides its numbers, and runs that
    matched but stopped early (the jitgrad run timed out before autograd's did)."""
    out = []
    for r in results:
        for line, la, lj in r["comparison"]["text_diffs"][:3]:
            out.append(f"* {r['name']} line {line}: autograd printed `{la.strip()[:120]}`, "
                       f"jitgrad `{lj.strip()[:120]}`")
        ag, jg = r["autograd"], r["jitgrad"]
        if r["verdict"] == "match" and jg["status"] == "timeout" and \
                len(jg["lines"]) < len(ag["lines"]):
            out.append(f"* {r['name']}: matched over {len(jg['lines'])} lines; jitgrad timed out "
                       f"where autograd printed {len(ag['lines'])}"
                       f"{' (and finished)' if ag['status'] == 'ok' else ''}"
                       + (f"; jitgrad was in {r['jitgrad_timeout_at']}"
                          if r["jitgrad_timeout_at"] else ""))
    return "\n".join(out)


def summary(results: list[dict]) -> str:
    n = len(results)
    counts: dict[str, int] = {}
    for r in results:
        key = r["verdict"].split(" (")[0]
        counts[key] = counts.get(key, 0) + 1
    line = (f"**{counts.get('match', 0)} of {n} run with only imports changed and match**"
            f" ({', '.join(f'{v} {k}' for k, v in sorted(counts.items()))}).")
    return line


def versions() -> str:
    from importlib import metadata

    def version(package):
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "not installed"
    try:
        jitgrad_rev = git(REPO_ROOT, "rev-parse", "--short", "HEAD").strip()
        if git(REPO_ROOT, "status", "--porcelain", "--", "jitgrad").strip():
            jitgrad_rev += " + uncommitted changes in jitgrad/"
    except subprocess.CalledProcessError:
        jitgrad_rev = "?"
    parts = [f"Python {platform.python_version()}", f"jitgrad {jitgrad_rev}"] + [
        f"{m} {version(m)}" for m in ("numpy", "numba", "scipy", "autograd", "matplotlib")]
    return ", ".join(parts)


# --------------------------------------------------------------------------- main


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--autograd-repo", help="autograd git repository (bare or checkout); "
                   f"default {DEFAULT_AUTOGRAD_REPO} if it exists")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per run (120)")
    p.add_argument("--rtol", type=float, default=1e-6, help="relative tolerance (1e-6)")
    p.add_argument("--atol", type=float, default=1e-9, help="absolute floor (1e-9)")
    p.add_argument("--only", help="comma-separated example names, e.g. rosenbrock,fluidsim/wing")
    p.add_argument("--json", help="write every result, with both runs' output, to this file")
    p.add_argument("--warm-cache", metavar="DIR",
                   help="use (and keep) this JITGRAD_CACHE_DIR instead of a new empty one")
    p.add_argument("--mnist-train", type=int, default=1000, help="random MNIST train images")
    p.add_argument("--mnist-test", type=int, default=200, help="random MNIST test images")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--from-json", metavar="FILE",
                   help="print the report of a run saved with --json, without running anything")
    return p.parse_args(argv)


def run_pair(name: str, trees: tuple[str, str], runner: str, env: dict, args) -> dict:
    ag_tree, jg_tree = trees
    ag_script = os.path.join(ag_tree, name + ".py")
    jg_script = os.path.join(jg_tree, name + ".py")
    with open(ag_script, encoding="utf-8") as f:
        seed_unseeded = re.search(r"RandomState\(\s*\)", f.read()) is not None
    a = run_example(runner, ag_script, ag_script, env, args.timeout, seed_unseeded)
    j = run_example(runner, jg_script, ag_script, env, args.timeout, seed_unseeded)
    c = compare(a, j, args.rtol, args.atol)
    notes = (["random data of MNIST's shapes in place of MNIST"] if name in MNIST_EXAMPLES
             else []) + (["`RandomState()` seeded with 0 in both runs"] if seed_unseeded else [])
    return {
        "name": name, "verdict": verdict(a, j, c), "comparison": asdict(c), "notes": notes,
        "autograd": dict(asdict(a), label=a.label()), "jitgrad": dict(asdict(j), label=j.label()),
        "first_missing": first_missing(j.error, j) if j.status == "error" else "",
        "autograd_error": first_missing(a.error, a) if a.status == "error" else "",
        "example_frame": frame_of(j.error, jg_tree, inside=True),
        "jitgrad_frame": frame_of(j.error, jg_tree, inside=False),
        "autograd_frame": frame_of(a.error, ag_tree, inside=True),
        "jitgrad_timeout_at": timeout_location(j, jg_tree) if j.status == "timeout" else "",
    }


def print_report(results: list[dict], total: float) -> None:
    print(markdown_table(results))
    print()
    print(summary(results) + f" Total wall time {total / 60:.1f} min.")
    failures = failure_list(results)
    if failures:
        print("\nWhat stops each example that does not match (the first failure only):\n")
        print(failures)
    notes = notes_list(results)
    if notes:
        print("\nOther differences:\n")
        print(notes)


def report_from_json(path: str) -> None:
    """Prints the report of a saved run again, comparing the saved output with this version."""
    with open(path) as f:
        saved = json.load(f)
    fields = [k for k in Run.__dataclass_fields__]
    for r in saved["results"]:
        a, j = (Run(**{k: r[side][k] for k in fields if k in r[side]})
                for side in ("autograd", "jitgrad"))
        c = compare(a, j, saved["rtol"], saved["atol"])
        r.update(comparison=asdict(c), verdict=verdict(a, j, c),
                 first_missing=first_missing(j.error, j) if j.status == "error" else "",
                 autograd_error=first_missing(a.error, a) if a.status == "error" else "")
    print(f"autograd examples from {saved['source']}; {saved['versions']}; "
          f"timeout {saved['timeout']:g} s, rtol {saved['rtol']:g}, atol {saved['atol']:g}\n")
    print_report(saved["results"], saved["total_seconds"])


def main(argv=None):
    # SIGTERM (`timeout`, a CI runner) unwinds like Ctrl-C, so that the example running in its
    # own session is killed with us instead of running on, orphaned.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    args = parse_args(argv)
    if args.from_json:
        return report_from_json(args.from_json)
    repo = locate_autograd_repo(args.autograd_repo)
    workdir = tempfile.mkdtemp(prefix="jitgrad-autograd-examples-")
    cache_dir = args.warm_cache or os.path.join(workdir, "jitgrad-cache")
    os.makedirs(cache_dir, exist_ok=True)
    started = time.perf_counter()
    try:
        ag_tree, jg_tree, source, rewrite_notes = build_trees(repo, workdir, args.mnist_train,
                                                              args.mnist_test)
        runner = os.path.join(workdir, "runner.py")
        with open(runner, "w") as f:
            f.write(RUNNER)
        names = list_examples(ag_tree)
        if args.only:
            wanted = [n.strip().removesuffix(".py") for n in args.only.split(",") if n.strip()]
            unknown = [n for n in wanted if n not in names]
            if unknown:
                sys.exit(f"unknown examples: {', '.join(unknown)}; known: {', '.join(names)}")
            names = wanted
        env = subprocess_env(cache_dir)
        print(f"autograd examples from {source}; {versions()}")
        print(f"timeout {args.timeout:g} s per run, rtol {args.rtol:g}, atol {args.atol:g}, "
              f"kernel cache {cache_dir}{' (kept)' if args.warm_cache else ' (new, empty)'}; "
              f"the MNIST examples use random data ({args.mnist_train} train, "
              f"{args.mnist_test} test images of MNIST's shapes)", flush=True)
        results = []
        for i, name in enumerate(names, 1):
            r = run_pair(name, (ag_tree, jg_tree), runner, env, args)
            r["notes"] = rewrite_notes.get(name, []) + r["notes"]
            results.append(r)
            print(f"[{i}/{len(names)}] {name}: autograd {r['autograd']['label']} "
                  f"({fmt_seconds(r['autograd']['seconds'])}), jitgrad {r['jitgrad']['label']} "
                  f"({fmt_seconds(r['jitgrad']['seconds'])}): {r['verdict']}", flush=True)
        total = time.perf_counter() - started
        print()
        print_report(results, total)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"source": source, "versions": versions(), "timeout": args.timeout,
                           "rtol": args.rtol, "atol": args.atol, "total_seconds": total,
                           "results": results}, f, indent=1)
            print(f"\nwrote {args.json}")
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
