"""Compilation: write generated source to the cache directory, load it, let Numba compile it.

Kernels are files named by a hash of their source, which embeds the IR and every shape and dtype,
so the key is the computation itself, never the identity of the user's function.  Because the
kernel is a real file, not an anonymous string, Numba's on-disk cache (`cache=True`) works across
processes, and tracebacks and `inspect` show real source.

Nothing on disk is trusted.  A kernel file must hold exactly the source it is named for, else it
is rewritten (and Numba's files for it dropped); the code that runs is the source in memory,
compiled under the file's name, so an edited or planted file never runs.  A Numba cache entry
that cannot be loaded is a miss, recompiled and overwritten (`fail_soft`).  An unusable cache
directory means a warning and a private temporary one.  The directory is kept under
`$JITGRAD_CACHE_MAX_MB` (default 512) by evicting the least recently used kernels.

The cache directory is `$JITGRAD_CACHE_DIR`, else `~/.cache/jitgrad`, made user-only (0700).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import linecache
import os
import pickle
import shutil
import sys
import tempfile
import time
import types
import warnings

from . import _jit
from .errors import JitgradInternalError, JitgradWarning

VERSION = "0.1.0"  # part of every kernel's hash: a new jitgrad never loads an old kernel
DEFAULT_MAX_MB = 512
_LOADED: dict[str, object] = {}  # kernel path -> dispatcher, for this process
_DIRS: dict[str, str | None] = {}  # $JITGRAD_CACHE_DIR ("" if unset) -> the directory in use
_FALLBACK: list[str | None] = []  # the private temporary directory, once made (None: failed)
_MEMORY = "<jitgrad-memory>"  # the "directory" of kernels that could be written nowhere
_ROOM: dict[str, int] = {}  # directory -> kernels this process may write before scanning it again


def cache_dir() -> str | None:
    """The kernel cache directory in use: `$JITGRAD_CACHE_DIR`, else `~/.cache/jitgrad`; if that
    is unusable, a private temporary directory (with a warning); None if none could be made."""
    key = os.environ.get("JITGRAD_CACHE_DIR") or ""
    if key not in _DIRS:
        path = key or os.path.join(os.path.expanduser("~"), ".cache", "jitgrad")
        problem = _unusable(path)
        _DIRS[key] = _fallback(f"{path} {problem}") if problem else path
    return _DIRS[key]


def _unusable(path: str) -> str | None:
    """Why `path` cannot hold the cache, or None.  Code is loaded from it, so it must be a
    writable directory of this user's that no other user can write to."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.stat(path)
    except OSError as e:
        return f"cannot be created ({e.strerror or e})"
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return "belongs to another user"
    if hasattr(os, "getuid") and st.st_mode & 0o022:
        try:  # made by an older jitgrad, or under umask 002: ours, so it can be made safe
            os.chmod(path, st.st_mode & 0o755)
        except OSError:
            return "is writable by other users"
    if not os.access(path, os.W_OK | os.X_OK):
        return "is not writable"
    return None


def _fallback(reason: str) -> str | None:
    if not _FALLBACK:
        try:
            path = tempfile.mkdtemp(prefix="jitgrad-")
            atexit.register(shutil.rmtree, path, ignore_errors=True)
        except OSError:
            path = None
        _FALLBACK.append(path)
    path = _FALLBACK[0]
    warnings.warn(f"jitgrad's kernel cache {reason}; " + (
        f"using {path} for this process instead" if path else
        "kernels are compiled in memory, for this process only"), JitgradWarning, stacklevel=2)
    return path


def _give_up(directory: str, error: Exception) -> None:
    """Stop using `directory` (a write into it failed) for the rest of the process."""
    if _FALLBACK and directory == _FALLBACK[0]:
        _FALLBACK[0] = None
    for key, path in _DIRS.items():
        if path == directory:
            _DIRS[key] = _fallback(f"{directory} failed ({error})")


@functools.cache
def _numba_version() -> str:
    """Numba's version and where it is installed, read without importing it (`import jitgrad`
    does not, see _jit.py): from its versioneer file, else from the package metadata."""
    import importlib.util
    import re

    spec = importlib.util.find_spec("numba")
    origin = getattr(spec, "origin", None) or ""
    try:
        with open(os.path.join(os.path.dirname(origin), "_version.py")) as f:
            found = re.search(r'"version": "([^"]+)"', f.read())
        if found:
            return f"{found.group(1)}@{os.path.dirname(origin)}"
    except OSError:
        pass
    from importlib.metadata import version

    return f"{version('numba')}@{os.path.dirname(origin)}"


def kernel_path(source: str) -> str:
    digest = hashlib.sha256(
        f"{VERSION}|{_numba_version()}|{sys.version_info[:2]}\n{source}".encode()
    ).hexdigest()[:24]
    return os.path.join(cache_dir() or _MEMORY, f"k_{digest}.py")


def load(source: str):
    """The Numba dispatcher of a generated kernel (compiled lazily, on its first call)."""
    _jit.ready()  # Numba, and jitgrad's own Numba functions, which kernels call
    path = kernel_path(source)
    kernel = _LOADED.get(path)
    if kernel is not None:
        return kernel
    for attempt in range(3):  # the cache directory, the temporary one, memory
        directory = os.path.dirname(path)
        if directory == _MEMORY:
            break
        try:
            _ensure_file(path, source)
            kernel = _module(path, source, cached=True).kernel
            break
        except (OSError, RuntimeError) as e:  # RuntimeError: Numba found nowhere to cache
            if attempt == 0 and not os.path.isdir(directory) and not _unusable(directory):
                continue  # deleted while we ran (`rm -rf`): made again
            _give_up(directory, e)
            path = kernel_path(source)
    if kernel is None:
        kernel = _module(path, source, cached=False).kernel
    _LOADED[path] = kernel
    return kernel


def is_cached(source: str) -> bool:
    """Whether the kernel of `source` is ready without compiling: loaded in this process, or
    compiled by Numba into the disk cache (by any process)."""
    path = kernel_path(source)
    if path in _LOADED:
        return bool(getattr(_LOADED[path], "signatures", None))
    directory = os.path.dirname(path)
    if directory == _MEMORY or not os.path.exists(path):
        return False
    stem = os.path.basename(path)[:-3]
    return any(f.endswith(".nbc") for f in _numba_files(directory, stem))


def forget(kernel) -> None:
    """Drop this process's references to a kernel (its module too), so that its memory is freed
    once no cached signature uses it; a later `load` of the same source compiles or loads it
    again."""
    for path in [p for p, k in _LOADED.items() if k is kernel]:
        del _LOADED[path]
        sys.modules.pop("jitgrad_kernel_" + os.path.basename(path)[2:-3], None)


def _ensure_file(path: str, source: str) -> None:
    """Make the file at `path` hold exactly `source`: an edited, truncated or planted file is
    rewritten (write-then-rename, so no process reads half a file), and Numba's cache files for
    it go too, since they may have been compiled from the bad file."""
    data = source.encode()
    try:
        with open(path, "rb") as f:
            if f.read(len(data) + 1) == data:
                # Marks it recently used, for eviction.  Only the access time: Numba's cache
                # entries are stamped with the modification time (or a content hash).
                st = os.fstat(f.fileno())
                with contextlib.suppress(OSError):
                    os.utime(path, ns=(time.time_ns(), st.st_mtime_ns))
                return
    except OSError:
        pass  # missing or unreadable: written afresh
    directory = os.path.dirname(path)
    for stale in _numba_files(directory, os.path.basename(path)[:-3]):
        with contextlib.suppress(OSError):
            os.remove(stale)
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _evict(directory, keep=path)


def _numba_files(directory: str, stem: str | None = None) -> list[str]:
    """Numba's cache files (`__pycache__/k_<hash>.<function>-<line>.pyXY[.N].nbc|.nbi`) of the
    kernel `stem`, or of every kernel."""
    pycache = os.path.join(directory, "__pycache__")
    try:
        names = os.listdir(pycache)
    except OSError:
        return []
    prefix = f"{stem}." if stem else "k_"
    return [os.path.join(pycache, n) for n in names if n.startswith(prefix)]


def _module(path: str, source: str, cached: bool) -> types.ModuleType:
    # Registered in sys.modules, because Numba rebuilds a cached kernel's environment from its
    # module, looked up by name.
    name = "jitgrad_kernel_" + os.path.basename(path)[2:-3]
    module = types.ModuleType(name)
    module.__file__ = path
    sys.modules[name] = module
    if not cached:
        source = source.replace("cache=True", "cache=False")
        linecache.cache[path] = (len(source), None, source.splitlines(True), path)
    # The source in memory runs, not the file: what was compared with the file cannot be swapped
    # before the import, and no bytecode cache (.pyc) is read.  The file name is the cached file,
    # which Numba's cache and tracebacks read.
    exec(compile(source, path, "exec"), module.__dict__)  # noqa: S102 (generated)
    from numba.core.dispatcher import Dispatcher

    for value in vars(module).values():
        if isinstance(value, Dispatcher):
            fail_soft(value)
    return module


def fail_soft(dispatcher) -> None:
    """Make a Numba dispatcher's disk cache fail soft.  An entry it cannot load (truncated,
    garbage, from another build: Numba raises EOFError, UnpicklingError, ... on every later
    load) is a miss, flushed so that the fresh compilation replaces it; one it cannot save is
    skipped.  Compiled code is saved with its SHA-256 appended (`pickle` ignores trailing bytes,
    so plain Numba still reads it) and checked on load: a flipped bit in machine code would
    otherwise load fine and run.  Only compilation goes through these methods, never a call."""
    cache = getattr(dispatcher, "_cache", None)
    file = getattr(cache, "_cache_file", None)
    if file is None or not all(hasattr(file, a) for a in ("_dump", "_load_data", "_data_path")):
        return  # not cached (or a Numba this was not written for)
    load, save, flush, dump = cache.load_overload, cache.save_overload, cache.flush, file._dump

    def load_overload(*args, **kwargs):
        try:
            return load(*args, **kwargs)
        except Exception:  # noqa: BLE001 (whatever a damaged file makes Numba raise)
            with contextlib.suppress(Exception):  # else saving fails too: the kernel runs uncached
                flush()
            return None

    def save_overload(*args, **kwargs):
        with contextlib.suppress(Exception):  # a full disk, say: the kernel runs uncached
            save(*args, **kwargs)

    def dump_checked(obj):
        data = dump(obj)
        return data + hashlib.sha256(data).digest()

    def load_checked(name):
        with open(file._data_path(name), "rb") as f:
            data = f.read()
        if hashlib.sha256(data[:-32]).digest() != data[-32:]:
            raise ValueError(f"{name} is damaged (checksum mismatch)")
        return pickle.loads(data[:-32])

    cache.load_overload, cache.save_overload = load_overload, save_overload
    file._dump, file._load_data = dump_checked, load_checked


def _max_bytes() -> float:
    text = os.environ.get("JITGRAD_CACHE_MAX_MB") or str(DEFAULT_MAX_MB)
    try:
        return max(0.0, float(text)) * 1e6
    except ValueError:
        warnings.warn(f"JITGRAD_CACHE_MAX_MB={text!r} is not a number; using {DEFAULT_MAX_MB}",
                      JitgradWarning, stacklevel=2)
        return DEFAULT_MAX_MB * 1e6


def _evict(directory: str, keep: str) -> None:
    """Delete least recently used kernels (a kernel file with its Numba cache files) until the
    directory is under the size limit.  Runs when a kernel is written, before a compilation that
    costs far more; even so, a directory far under the limit is not scanned at every write (a
    scan of 2000 kernels takes some 35 ms).  Kernels this process loaded are kept: Numba still
    saves their compiled code next to them."""
    if _ROOM.get(directory, 0) > 0:
        _ROOM[directory] -= 1
        return
    entries: dict[str, list] = {}  # "k_<hash>" -> [last use, bytes, paths]
    for folder in (directory, os.path.join(directory, "__pycache__")):
        try:
            scan = list(os.scandir(folder))
        except OSError:
            continue
        for e in scan:
            if not e.name.startswith("k_") or ".tmp" in e.name:  # not ours, or being written
                continue
            try:
                st = e.stat()
            except OSError:
                continue
            entry = entries.setdefault(e.name.split(".", 1)[0], [0.0, 0, []])
            entry[1] += st.st_size
            entry[2].append(e.path)
            if folder == directory:
                entry[0] = st.st_atime
    total, limit = sum(e[1] for e in entries.values()), _max_bytes()
    busy = {os.path.basename(p)[:-3] for p in (*_LOADED, keep) if os.path.dirname(p) == directory}
    # Oldest first; Numba files whose kernel file is gone (last use 0) before any.
    for stem, (_, size, paths) in sorted(entries.items(), key=lambda item: item[1][0]):
        if total <= limit:
            break
        if stem in busy:
            continue
        for p in paths:
            with contextlib.suppress(OSError):
                os.remove(p)
        total -= size
    # Half the kernels of average size that still fit (other processes write here too), at most
    # 100, may be written before the next scan.
    average = total / len(entries) if entries else 1e5
    _ROOM[directory] = int(min(100, max(0, limit - total) / max(average, 1) / 2))


def clear_cache() -> None:
    """Delete every kernel in the disk cache (its files and Numba's compiled code for them).
    Kernels this process already loaded keep working; new ones are generated again."""
    _LOADED.clear()
    directory = cache_dir()
    if directory is None:
        return
    try:
        names = [os.path.join(directory, n) for n in os.listdir(directory)
                 if n.startswith("k_") or n.endswith(".tmp")]
    except OSError:
        names = []
    for path in names + _numba_files(directory):
        with contextlib.suppress(OSError):
            os.remove(path)


def first_call(kernel, args):
    """Call a kernel for the first time: Numba compiles it (or loads it from its disk cache, see
    `fail_soft`).  A failure here is a jitgrad bug, reported with the generated file, not as a
    typing error."""
    if not _jit.is_ready():  # the interpreted tier's kernel: Numba is not needed (nor imported)
        return kernel(*args)
    import numba

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", numba.NumbaPerformanceWarning)
            return kernel(*args)
    except numba.core.errors.NumbaError as e:
        path = getattr(kernel.py_func, "__code__", None)
        where = path.co_filename if path else "?"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise JitgradInternalError(
            f"jitgrad generated a kernel that Numba could not compile ({first}). This is a bug "
            f"in jitgrad; the generated source is {where}") from None
