"""Compiling a kernel in another process, into the disk cache, while the caller goes on.

Numba's compiler holds the GIL, so a compile in a thread slows the caller as much as it saves
(`benchmarks/background_compile.py`).  A worker process does not: it runs on another core,
compiles the kernel's source for the argument types of the call that asked for it, and Numba
saves the machine code in the cache directory (`compile.py`), from which this process then
loads it in milliseconds (plus Numba's own start-up, about 0.5 s, if no kernel ran here yet).
The interpreted tier (api.py) keeps running the signature meanwhile.

    python -m jitgrad.compile_worker REQUEST

REQUEST is a pickle written by `start`: the kernel's source and, for each argument, a tiny
array of the same dtype, rank, layout and writability (or the number, or a tuple of those),
which types exactly as the real argument does.  The worker deletes it once read.

Only kernels whose every name is importable in a new process go to a worker: their source may
import jitgrad's modules, but not `jitgrad.extend`'s native primitives (functions made in this
process) nor anything else.  Killing a worker at any moment leaves at worst a cache entry that
fails to load, which `compile.fail_soft` treats as a miss.  Workers still running when this
process exits are terminated.

Off by default: `$JITGRAD_COMPILE_WORKER=1` turns it on.  Measured on this 2-core machine it
did not pay: softmax regression (10,000 steps) took 2.76 s with workers and 2.69 s without, and
autograd's GAN example 27.5 s against 16.5 s, because the worker's core is the one the caller's
multi-threaded BLAS wanted (OpenBLAS' threads spin while another process holds a core).  On a
machine with cores to spare it may.  Execution mode "compile" always compiles in the caller.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pickle
import re
import sys
import time

import numpy as np

_RUNNING: list = []  # the workers started by this process, until they are seen to end
_IMPORT = re.compile(r"^(?:import|from) (\S+)", re.M)


def enabled() -> bool:
    return os.environ.get("JITGRAD_COMPILE_WORKER", "0") not in ("0", "")


def portable(source: str) -> bool:
    """Whether a new process can compile `source`: it imports only jitgrad, NumPy, Numba and
    `math`, and calls no native primitive of `jitgrad.extend` (those live in this process)."""
    for module in _IMPORT.findall(source):
        top = module.split(".")[0]
        if top not in ("jitgrad", "numpy", "numba", "math") or module.startswith("jitgrad.extend"):
            return False
    return True


def _proxy(value):
    """Something small that Numba types as it types `value`, or raises TypeError."""
    if isinstance(value, np.ndarray):
        if not value.flags.aligned or not value.dtype.isnative or value.dtype.hasobject:
            raise TypeError("an unusual array")
        if value.flags.c_contiguous:
            p = np.zeros((1,) * value.ndim, value.dtype)
        elif value.flags.f_contiguous:
            p = np.zeros((2,) * value.ndim, value.dtype, order="F")
        else:  # strided: sizes of 2 (NumPy calls any array of ones' shape contiguous)
            p = np.zeros((4,) * value.ndim, value.dtype)[(slice(None, None, 2),) * value.ndim]
        p.flags.writeable = value.flags.writeable
        return p
    if isinstance(value, tuple):
        return tuple(_proxy(v) for v in value)
    if type(value) in (bool, int, float, complex) or isinstance(value, np.generic):
        return value
    raise TypeError(type(value).__name__)


class Worker:
    """A kernel compiling in a worker process.  `done()` says whether it has ended (and
    `error` then says why it failed, or is None); it is killed past `timeout` seconds."""

    def __init__(self, process, log, timeout: float):
        self.process, self.log, self.error, self.ended = process, log, None, False
        self.request = b""
        self.deadline = time.monotonic() + timeout

    def done(self) -> bool:
        if self.ended:
            return True
        code = self.process.poll()
        if code is None:
            if time.monotonic() < self.deadline:
                return False
            self.process.kill()
            code = self.process.wait()
            self.error = "it took too long and was stopped"
        elif code != 0:
            self.error = _last_line(self.log) or f"the worker process exited with code {code}"
        with contextlib.suppress(ValueError):
            _RUNNING.remove(self)
        self.log.close()
        self.ended = True
        return True


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_EXCEPTION = re.compile(r"^[\w.]*(Error|Exception|Interrupt|Exit)\b")


def _last_line(log) -> str:
    """The exception a worker's log ends with (its last line naming one), else its last line."""
    with contextlib.suppress(OSError, ValueError):
        log.seek(0)
        text = _ANSI.sub("", log.read().decode(errors="replace"))
        lines = [x.strip() for x in text.splitlines() if x.strip()]
        named = [x for x in lines if _EXCEPTION.match(x)]
        return (named or lines or [""])[-1][:300]
    return ""


def start(source: str, args, directory: str, timeout: float) -> Worker | None:
    """Start compiling `source` for `args`' types into the cache `directory`, or None if this
    kernel, its arguments or this machine cannot have it done elsewhere."""
    if not enabled() or not portable(source):
        return None
    import subprocess  # (not at import: 3.5 ms of every `import jitgrad`)
    import tempfile

    try:
        proxies = [_proxy(a) for a in args]
    except TypeError:
        return None
    request_data = pickle.dumps((source, proxies))
    for worker in _RUNNING:  # the same kernel and types asked for again (another signature)
        if worker.request == request_data and not worker.done():
            return worker
    try:
        fd, request = tempfile.mkstemp(dir=directory, prefix="worker-", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(request_data)
        log = tempfile.TemporaryFile()
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        path = [root, *filter(None, [os.environ.get("PYTHONPATH")])]
        env = dict(os.environ, JITGRAD_CACHE_DIR=directory, PYTHONPATH=os.pathsep.join(path))
        process = subprocess.Popen([sys.executable, "-m", "jitgrad.compile_worker", request],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=log, env=env, cwd=directory)
    except OSError:
        return None
    worker = Worker(process, log, timeout)
    worker.request = request_data
    _RUNNING.append(worker)
    return worker


@atexit.register
def _stop_all() -> None:
    for worker in list(_RUNNING):
        with contextlib.suppress(OSError):
            worker.process.kill()
            worker.process.wait(timeout=5)


def main(request: str) -> None:
    with open(request, "rb") as f:
        source, proxies = pickle.load(f)
    os.remove(request)
    from . import compile

    kernel = compile.load(source)
    import numba

    kernel.compile(tuple(numba.typeof(p) for p in proxies))


if __name__ == "__main__":
    main(sys.argv[1])
