"""Compilation: write generated source to the cache directory, import it, let Numba compile it.

Kernels are files named by a hash of their source, which embeds the IR and every shape and dtype,
so the key is the computation itself, never the identity of the user's function.  Because the
kernel is an importable file and not an `exec`'d string, Numba's on-disk cache (`cache=True`)
works across processes, and tracebacks and `inspect` show real source.

The cache directory is `$JITGRAD_CACHE_DIR`, else `~/.cache/jitgrad`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pickle
import sys
import tempfile
import warnings

import numba

from .errors import JitgradInternalError

VERSION = "0.1.0"  # part of every kernel's hash: a new jitgrad never loads an old kernel
_LOADED: dict[str, object] = {}


def cache_dir() -> str:
    path = os.environ.get("JITGRAD_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "jitgrad")
    os.makedirs(path, exist_ok=True)
    return path


def kernel_path(source: str) -> str:
    digest = hashlib.sha256(
        f"{VERSION}|{numba.__version__}|{sys.version_info[:2]}\n{source}".encode()
    ).hexdigest()[:24]
    return os.path.join(cache_dir(), f"k_{digest}.py")


def load(source: str):
    """The Numba dispatcher of a generated kernel (compiled lazily, on its first call)."""
    path = kernel_path(source)
    kernel = _LOADED.get(path)
    if kernel is not None:
        return kernel
    if not os.path.exists(path):
        # Write-then-rename, so a concurrent process never imports a half-written file.
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(source)
        os.replace(tmp, path)
    # Registered in sys.modules, because Numba's disk cache re-imports the module by name.
    name = "jitgrad_kernel_" + os.path.basename(path)[2:-3]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    kernel = module.kernel
    _LOADED[path] = kernel
    return kernel


def first_call(kernel, args):
    """Call a kernel for the first time: Numba compiles it (or loads it from its disk cache).
    A failure here is a jitgrad bug, reported with the generated file, not as a typing error."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", numba.NumbaPerformanceWarning)
            try:
                return kernel(*args)
            except (ImportError, EOFError, OSError, AttributeError, pickle.UnpicklingError):
                # An unreadable on-disk cache entry (written by another version, or truncated):
                # forget it and compile afresh.
                kernel._cache.flush()
                return kernel(*args)
    except numba.core.errors.NumbaError as e:
        path = getattr(kernel.py_func, "__code__", None)
        where = path.co_filename if path else "?"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise JitgradInternalError(
            f"jitgrad generated a kernel that Numba could not compile ({first}). This is a bug "
            f"in jitgrad; the generated source is {where}") from None
