"""Watches: what a trace read from outside its arguments, and a check that it all still holds.

A kernel computes a function of its arguments.  Everything else the traced code read -- globals,
closure variables, attributes, defaults, elements of containers -- was folded into the trace as it
was at that moment, so the kernel may serve a later call only if all of it is unchanged.  While a
function is traced, every such read is recorded on the active traces (`record`); `guard` turns the
records into one compiled check that runs before every call, and a failed check traces again.

What is watched, and how:
  - a module global read by converted code, or named by an unconverted function's code: the object
    the name is bound to (or its absence, so that a new global shadowing a builtin is seen);
  - a closure cell: its contents;
  - an attribute read by converted code (`self.w`, `cfg.lr`), on any object but modules of
    libraries: the object it gives (a number or string by value, a bound method by its function);
  - a function's `__defaults__` and `__kwdefaults__`;
  - a list, tuple or dict read from the user's scope: its structure and the identity of its leaves;
  - an array's *content*, only when its values were folded into the trace (used by NumPy code
    jitgrad does not trace, or by an unconverted function).  Other arrays read from the user's
    scope are kernel arguments, read afresh at every call, so changing them in place is seen
    without any check.
"""

from __future__ import annotations

import dis
import functools
import math
import types
import weakref

import numpy as np

from .trace import active_traces, flatten

_MISSING = object()
_SCALARS = (int, float, complex, bool, str, bytes, type(None), np.generic)


def record(key, watch) -> None:
    """Note `watch` (a tuple: kind, then its data) on every active trace, once per `key`."""
    for trace in active_traces():
        trace.watches.setdefault(key, watch)


def watch_global(namespace: dict, name: str):
    value = namespace.get(name, _MISSING)
    record(("global", id(namespace), name), ("global", namespace, name, value))
    return value


def watch_cell(cell):
    try:
        value = cell.cell_contents
    except ValueError:  # an empty cell
        value = _MISSING
    record(("cell", id(cell)), ("cell", cell, value))
    return value


def watch_attr(obj, name: str, value) -> None:
    record(("attr", id(obj), name), ("attr", obj, name, value))


def watch_defaults(fn) -> None:
    record(("defaults", id(fn)), ("defaults", fn, fn.__defaults__, fn.__kwdefaults__))


def watch_tree(obj) -> None:
    leaves: list = []
    tree = flatten(obj, leaves)
    record(("tree", id(obj)), ("tree", obj, tree, leaves))


def watch_content(array: np.ndarray) -> None:
    record(("content", id(array)), ("content", array, array.copy()))


def watch_function(fn, contents: bool = True) -> None:
    """What a user function can read: the globals its code names (or their absence), its
    closure cells and its defaults; with `contents`, for a function that was not converted, also
    the content of the arrays among them, whose values its code may have folded."""
    code, namespace = getattr(fn, "__code__", None), getattr(fn, "__globals__", None)
    if code is None or namespace is None:
        return
    values = [watch_global(namespace, name) for name in _global_names(code)]
    values += [watch_cell(cell) for cell in fn.__closure__ or ()]
    if fn.__defaults__ or fn.__kwdefaults__:
        # (Without defaults, a call that leaves an argument out is a new signature anyway.)
        watch_defaults(fn)
    if not contents:
        return
    values += list(fn.__defaults__ or ()) + list((fn.__kwdefaults__ or {}).values())
    for value in values:
        leaves: list = []
        flatten(value, leaves)
        for leaf in leaves:
            if isinstance(leaf, np.ndarray):
                watch_content(leaf)


def _global_names(code) -> tuple:
    """The names `code` (and the code nested in it) looks up as globals, sorted."""
    names = _GLOBAL_NAMES.get(code)
    if names is None:
        found, stack = set(), [code]
        while stack:
            c = stack.pop()
            found.update(i.argval for i in dis.get_instructions(c)
                         if i.opname in ("LOAD_GLOBAL", "LOAD_NAME"))
            stack.extend(x for x in c.co_consts if isinstance(x, types.CodeType))
        names = _GLOBAL_NAMES[code] = tuple(sorted(found))
    return names


_GLOBAL_NAMES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


# ------------------------------------------------------------------------------------------------
# The check
# ------------------------------------------------------------------------------------------------


def same_value(a, b) -> bool:
    """`b` is still what `a` was: the same object, or an equal number or string of the same
    type (bitwise for floats: -0.0 is not 0.0, and a NaN is itself)."""
    if a is b:
        return True
    if type(a) is not type(b) or not isinstance(a, _SCALARS):
        if isinstance(a, types.MethodType) and isinstance(b, types.MethodType):
            return a.__func__ is b.__func__ and a.__self__ is b.__self__
        return False
    if isinstance(a, (float, np.floating)):
        return (a == b and math.copysign(1.0, a) == math.copysign(1.0, b)) or (a != a and b != b)
    if isinstance(a, (complex, np.complexfloating)):
        return same_value(a.real, b.real) and same_value(a.imag, b.imag)
    return bool(a == b)


def _same_tree(obj, tree, leaves) -> bool:
    now: list = []
    if flatten(obj, now) != tree or len(now) != len(leaves):
        return False
    return all(same_value(a, b) for a, b in zip(leaves, now))


def _same_content(array, snapshot) -> bool:
    return (array.shape == snapshot.shape and array.dtype == snapshot.dtype
            and array.tobytes() == snapshot.tobytes())


def _cell(cell):
    try:
        return cell.cell_contents
    except ValueError:
        return _MISSING


def guard(watches: dict):
    """One function checking every watch, or None when there is nothing to check.  It is
    generated as a single expression, because it runs before every kernel call."""
    env = {"_m": _MISSING, "_same": same_value, "_tree": _same_tree, "_content": _same_content,
           "_cell": _cell}
    terms = []
    for k, watch in enumerate(watches.values()):
        kind = watch[0]
        if kind == "global":
            _, env[f"n{k}"], env[f"k{k}"], env[f"v{k}"] = watch
            now = f"n{k}.get(k{k}, _m)"
        elif kind == "cell":
            _, env[f"c{k}"], env[f"v{k}"] = watch
            now = f"_cell(c{k})"
        elif kind == "attr":
            _, env[f"o{k}"], env[f"k{k}"], env[f"v{k}"] = watch
            now = f"getattr(o{k}, k{k}, _m)"
        elif kind == "defaults":
            _, env[f"f{k}"], env[f"d{k}"], env[f"e{k}"] = watch
            terms.append(f"f{k}.__defaults__ is d{k} and f{k}.__kwdefaults__ is e{k}")
            continue
        elif kind == "never":  # traced again at every call
            terms.append("False")
            continue
        elif kind == "tree":
            _, env[f"o{k}"], env[f"t{k}"], env[f"l{k}"] = watch
            terms.append(f"_tree(o{k}, t{k}, l{k})")
            continue
        else:  # content
            _, env[f"a{k}"], env[f"s{k}"] = watch
            terms.append(f"_content(a{k}, s{k})")
            continue
        identity = not isinstance(env[f"v{k}"], _SCALARS + (types.MethodType,))
        terms.append(f"{now} is v{k}" if identity else f"_same(v{k}, {now})")
    if not terms:
        return None
    # Built from generated names only; the user's names and values are in `env`.  A check that
    # raises (a property that fails now) counts as a change.
    source = "def check():\n    try:\n        return " + " and ".join(terms) + \
        "\n    except Exception:\n        return False\n"
    exec(_compiled(source), env)  # noqa: S102
    return env["check"]


@functools.lru_cache(maxsize=256)
def _compiled(source: str):
    """The code object of a generated source: each signature's guard is the same few texts,
    and compiling one costs more than the rest of the guard's making."""
    return compile(source, "<jitgrad guard>", "exec")
