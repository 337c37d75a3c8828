"""Source-to-source conversion of Python control flow, as TensorFlow's AutoGraph and Tangent do.

Python control flow whose condition depends on a traced value (`while np.abs(term) > 1e-3:`,
`if np.sum(x * x) > 4:`) cannot run on tracers.  `convert(fn)` rewrites `fn`'s source so that
each `if`/`while`/`for` statement becomes a call of a runtime function (`jitgrad.control`,
injected into the converted code under the name `__jg`) that either runs plain Python, when the
condition turns out to be a concrete value, or records a structured branch or loop in the IR.

What is converted
-----------------
``if c: A else: B``
    becomes two nested functions taking the *carried* variables (see below) as parameters and
    returning their new values as a tuple, and
    ``(v1, v2) = __jg.if_stmt(c, true_fn, false_fn, (v1, v2), ("v1", "v2"), "file:line")``.
    ``elif`` chains are nested ``if`` statements in the ``else`` branch, converted the same way.

``while c: body``
    becomes ``cond_fn(v1, v2)`` returning ``c``, ``body_fn(v1, v2)`` returning the new values,
    and ``(v1, v2) = __jg.while_stmt(cond_fn, body_fn, (v1, v2), ("v1", "v2"), "file:line")``.

``for i in range(a[, b[, c]]): body``  (the builtin ``range``, 1 to 3 positional arguments)
    becomes ``body_fn(i, v1, v2)`` and
    ``(v1, v2) = __jg.for_range_stmt((a, b, c), body_fn, (v1, v2), ("v1", "v2"), "file:line")``.
    The loop index is not carried unless the function reads it outside the loop or the body
    assigns to it; then it is the first carried variable, and the body starts with
    ``i = <index>`` so that after the loop it holds its last value, as in Python (or its old
    value after zero iterations).

``else:`` clauses of converted loops run after the loop (converted loops contain no ``break``).

Any other ``for`` (over a list, an array, ``enumerate``, ``zip``) stays a Python ``for``; its body
is still converted.

Carried variables
    are the variables a statement assigns (assignments, augmented assignments, ``for`` and
    ``with ... as`` targets, imports, nested ``def``/``class``, ``:=``) that the rest of the
    function may read: a variable assigned in the statement is carried if it is read anywhere in
    the function outside the statement's bodies (its condition, range arguments, and loop
    ``else`` count as outside), or if it may be read before being assigned inside a body.  Other
    assigned variables are temporaries, local to the branch or body function.  A carried variable
    that may not be assigned yet when the statement runs (it is not a parameter, and no earlier
    statement of the same body assigns it on every path) is initialised to
    ``__jg.Undefined("name")`` at the top of the function (or of the enclosing branch/body
    function), so no ``UnboundLocalError`` occurs.  The ``names`` tuples hold the variables'
    names as written in the source (``RETURN_VALUE`` for the early-return variable).

Early returns
    At the top level of a function body, ``if c: ...; return a`` followed by more statements is
    rewritten so that the remaining statements become the ``else`` branch and every ``return v``
    in the ``if`` becomes ``__jg_retval = v`` (`RETURN_VALUE`), followed by
    ``return __jg_retval`` after the ``if`` -- recursively, for chains of such ``if``s and for
    ``if``s nested at the end of a branch.  This is done only when every ``return`` inside the
    ``if`` is the last statement of its branch (a branch may also end in ``raise``), and when
    at most one of the two branches falls through (so no statement is duplicated).  A function
    that falls off its end returns ``None``, as before.

Calls
    ``f(a, *b, k=c, **d)`` becomes ``__jg.converted_call(f, a, *b, k=c, **d)``, so helper
    functions with control flow are converted too, also inside lambdas, comprehensions and
    nested functions (not inside nested class bodies).  Calls of names that are builtins (not
    assigned in the function, not a global of its module, not a closure variable: ``range``,
    ``len``, ``print``, ``isinstance``, ``float``, ``int``, ...) are left alone, and so are
    calls of ``__jg.*``.  A zero-argument ``super()`` becomes ``super(__class__, self)`` (the
    function's first parameter), so it keeps working inside branch and loop functions.

Reads of the user's scope
    A global or closure variable ``w`` that the function reads becomes ``__jg.ld(w)``, and an
    attribute ``a.b`` becomes ``__jg.attr(a, "b")`` (private names mangled as the compiler
    would), also inside nested functions, lambdas and comprehensions; called names (``f(x)``),
    builtins that are not shadowed, and ``__class__`` stay as they are.  While tracing, the runtime
    turns arrays read this way into kernel arguments and watches the rest (``jitgrad/watch.py``),
    so that no value that can change is folded into a kernel unwatched.

Lambdas
    are converted as ``def``s whose body is ``return <expression>``.

Nested functions
    ``def`` statements inside the function are converted the same way; their variables are local
    to them.  Nested generators, coroutines and class bodies are left as they are.

Conditional expressions, comprehensions, lambdas, ``and``/``or``, ``try``/``with``/``match``
statements are unchanged (the statements inside ``try``/``with``/``match`` bodies are converted).

What is left as plain Python, and why
-------------------------------------
An ``if`` or loop is left as a Python statement (its nested statements may still be converted
when they are self-contained) when it contains, outside nested functions:

- ``break`` or ``continue`` (of this loop, or of an enclosing loop, for an ``if``): a nested
  function cannot jump out of the caller's loop;
- ``return`` (other than the early-return pattern above), ``yield``, ``await``;
- an assignment to an attribute or a subscript (``a.b = ...``, ``a[i] += ...``), or ``del``:
  side effects that a branch or loop function cannot carry out of a traced statement;
- (``while`` only) an assignment expression ``:=`` in the condition;
- an ``except ... as e`` whose name is also a carried variable.

Each such statement is recorded as ``UNCONVERTED[(filename, lineno)] = reason`` (for example
``"a `break` inside the loop (line 14)"``), as is every ``for`` that is not over ``range(...)``,
so that the runtime can say why a traced condition there cannot be compiled.

What is not converted at all
----------------------------
`convert(fn)` returns `fn` itself (and never raises) for: anything that is not a Python function
or a bound method (builtins, ``functools.partial``, classes, callable objects: the runtime's
``converted_call`` calls the function inside a partial, and a callable object's ``__call__``),
generators and coroutines, functions without available source (made by ``exec``), functions
whose source is not the code that runs (the file was edited after import: the source is looked
up from the code object, never through ``__wrapped__``, and the whole file is compiled again and
its code for the function compared with the running one), functions with ``global`` or
``nonlocal`` statements, functions that call ``locals``,
``vars``, ``eval``, ``exec`` or ``dir``, functions using names that start with ``__jg``, functions
of modules in `DO_NOT_CONVERT` (jitgrad itself, NumPy, SciPy, ...) or of the standard library or
``site-packages``, and functions in which there is nothing to convert (no ``if``/``while``/``for``
that can be converted and no call to wrap).

The converted function
----------------------
It reads the same globals dict as `fn` (``fn.__globals__``, live) and the *same closure cells*
as `fn` (so it sees a closure variable rebound later, as `fn` does).  It has `fn`'s
``__name__``, ``__qualname__``, ``__doc__``, ``__module__``, ``__annotations__``, ``__dict__``,
defaults and keyword defaults, and ``__wrapped__ = fn``.  Its line numbers (and column offsets)
are those of `fn`'s source file, so tracebacks and the ``where`` strings point at the user's
lines; generated statements carry the position of the ``if``/``while``/``for`` header they come
from, and generated functions are named ``__jg_<kind>_<line>``.

The rewritten function is compiled once per code object (with `fn`'s file name and
``from __future__`` flags, inside a factory function whose parameters are the runtime and `fn`'s
free variables, and inside a class of the same name when `fn` is a method using private
``__names``, so that they are mangled as in the original); the function's code object is taken
out of the factory's constants, never executed, so nothing is added to any namespace.  Each
`convert(fn)` call then makes a fresh function from that code with ``types.FunctionType``.

Limitations
-----------
- A variable that the original function would report as unbound (``UnboundLocalError``) after
  a converted statement holds an ``Undefined`` object instead; the runtime decides what using it
  does.
- A closure created inside a converted branch or loop body and called after the statement sees
  the value a carried variable had in that body, not later rebindings in the outer function.
- Converted code runs in more frames (the runtime's and the branch/body functions): code that
  counts frames (``warnings.warn(..., stacklevel=n)``, ``sys._getframe``) sees different ones.
- Loops that mutate objects through method calls (``out.append(v)``) are converted; the runtime
  must run them as Python (it does when the range or condition is concrete).
- Callable objects and classes are called as they are (their ``__call__``/``__init__`` is not
  converted); so are functions passed to other functions (``map(f, xs)``, ``sorted(key=f)``).
"""

from __future__ import annotations
import __future__

import ast
import builtins
import collections
import copy
import inspect
import linecache
import os
import sys
import sysconfig
import types
import weakref

__all__ = [
    "DO_NOT_CONVERT",
    "RETURN_VALUE",
    "RUNTIME_NAME",
    "UNCONVERTED",
    "convert",
    "converted_source",
    "not_converted_reason",
]

# The name under which converted code sees the runtime module.
RUNTIME_NAME = "__jg"
# The variable that holds the return value of a folded early-return `if`.
RETURN_VALUE = "__jg_retval"
_PREFIX = "__jg"

# Statements left as plain Python, and why: (filename, lineno) -> reason.  jitgrad.control should
# use this very dict (`from .convert import UNCONVERTED`); a runtime with its own `UNCONVERTED`
# dict also gets the entries of every function converted for it.
UNCONVERTED: dict = {}

# Top-level packages whose functions are never converted (edit to taste).
DO_NOT_CONVERT = {"jitgrad", "numpy", "scipy", "numba", "llvmlite", "autograd", "jax", "jaxlib",
                  "torch", "pytest", "_pytest", "pluggy", "IPython", "ipykernel"}

_UNSAFE_BUILTINS = {"locals", "vars", "eval", "exec", "dir"}
_NOT_CONVERTIBLE_FLAGS = (inspect.CO_GENERATOR | inspect.CO_COROUTINE
                          | inspect.CO_ITERABLE_COROUTINE | inspect.CO_ASYNC_GENERATOR)
_FUTURE_FLAGS = 0
for _name in __future__.all_feature_names:
    _FUTURE_FLAGS |= getattr(__future__, _name).compiler_flag

_TRY_NODES = tuple(t for t in (ast.Try, getattr(ast, "TryStar", None)) if t is not None)
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _library_dirs() -> tuple:
    dirs = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        try:
            path = sysconfig.get_paths().get(key)
        except Exception:  # noqa: BLE001
            path = None
        if path:
            dirs.add(os.path.normcase(os.path.abspath(path)) + os.sep)
    for path in sys.path:
        if path and os.path.basename(path) in ("site-packages", "dist-packages"):
            dirs.add(os.path.normcase(os.path.abspath(path)) + os.sep)
    return tuple(dirs)


_LIBRARY_DIRS = _library_dirs()


# ------------------------------------------------------------------------------------------------
# Public functions
# ------------------------------------------------------------------------------------------------


def convert(fn, runtime=None):
    """`fn` with its control flow converted (see the module docstring), or `fn` itself when it
    cannot or need not be converted.  Never raises for unconvertible input.

    The conversion (parsing, rewriting and compiling) is cached per code object, weakly, so it
    happens once per function; each call then builds a **fresh** function object from the cached
    code (a `types.FunctionType` call: microseconds), bound to `fn`'s current globals, closure
    cells and defaults, and to `runtime` (default: the `jitgrad.control` module), which the
    converted code sees as `__jg`.  A bound method gives a bound method of the converted function.
    Converting a converted function returns it unchanged.
    """
    kind = type(fn)
    if kind is types.MethodType:
        func = convert(fn.__func__, runtime)
        return fn if func is fn.__func__ else types.MethodType(func, fn.__self__)
    if kind is not types.FunctionType:
        return fn
    entry = _CACHE.get(fn.__code__) or _entry(fn)
    if entry.unconverted or entry.code is not None:
        if runtime is None:
            runtime = _RUNTIME[0] or _default_runtime()
        if entry.unconverted:
            table = getattr(runtime, "UNCONVERTED", None)
            if isinstance(table, dict) and table is not UNCONVERTED:
                table.update(entry.unconverted)
    if entry.code is None:
        return fn
    try:
        return entry.make(fn, runtime)
    except Exception:  # noqa: BLE001 (a closure that does not fit: keep fn)
        return fn


def converted_source(fn) -> str | None:
    """The source of `fn`'s converted version (as `ast.unparse` prints it), or None if `fn` is
    not converted.  For debugging and `explain`."""
    if isinstance(fn, types.MethodType):
        fn = fn.__func__
    if not isinstance(fn, types.FunctionType):
        return None
    entry = _entry(fn)
    return entry.source if entry.code is not None else None


def not_converted_code_reason(code) -> str | None:
    """Why the function of `code` was not converted when it was last met, if it was not (and
    not for a reason that has nothing to do with control flow), else None."""
    entry = _CACHE.get(code)
    if entry is None or entry.code is not None or entry is _ALREADY \
            or entry.reason == "there is nothing to convert":
        return None
    return entry.reason


def not_converted_reason(fn) -> str | None:
    """Why `convert(fn)` returns `fn` itself, or None if it converts it."""
    if isinstance(fn, types.MethodType):
        fn = fn.__func__
    if not isinstance(fn, types.FunctionType):
        return f"a {type(fn).__name__}, not a Python function"
    entry = _entry(fn)
    return entry.reason if entry.code is None else None


# ------------------------------------------------------------------------------------------------
# The cache
# ------------------------------------------------------------------------------------------------

_RUNTIME: list = [None]


def _default_runtime():
    from . import control
    _RUNTIME[0] = control
    return control


def _entry(fn) -> _Entry:
    """The cached conversion of `fn`'s code, converting it now if needed; never raises."""
    code = fn.__code__
    entry = _CACHE.get(code)
    if entry is not None:
        return entry
    try:
        entry = _analyse(fn)
    except Exception as e:  # noqa: BLE001 (never raise for unconvertible input)
        entry = _no(f"conversion failed: {type(e).__name__}: {e}")
    _CACHE[code] = entry
    if entry.unconverted:
        UNCONVERTED.update(entry.unconverted)
    return entry


class _Entry:
    """What converting one code object gave: a code object to build functions from (or None,
    with the reason), and the statements left as plain Python."""

    __slots__ = ("cells", "code", "reason", "source", "unconverted")

    def __init__(self, code=None, cells=(), reason=None, unconverted=None, source=None):
        self.code, self.reason = code, reason
        # Per free variable of `code`: its index in the original function's closure, or -1 for
        # the runtime.
        self.cells = cells
        self.unconverted = unconverted or {}
        self.source = source

    def make(self, fn, runtime):
        closure = fn.__closure__
        if self.cells:
            cell = _runtime_cell(runtime)
            closure = tuple(cell if i < 0 else closure[i] for i in self.cells)
        else:
            closure = None
        new = _FunctionType(self.code, fn.__globals__, fn.__name__, fn.__defaults__, closure)
        new.__kwdefaults__ = fn.__kwdefaults__
        new.__qualname__ = fn.__qualname__
        new.__doc__ = fn.__doc__
        if fn.__module__ != new.__module__:
            new.__module__ = fn.__module__
        new.__annotations__ = fn.__annotations__
        if fn.__dict__:
            new.__dict__.update(fn.__dict__)
        new.__wrapped__ = fn
        return new


_FunctionType = types.FunctionType
_last_runtime: list = [None, None]  # [runtime, a cell holding it]


def _runtime_cell(runtime):
    if _last_runtime[0] is not runtime:
        _last_runtime[:] = [runtime, types.CellType(runtime)]
    return _last_runtime[1]


class _CodeCache:
    """code object -> _Entry, by identity and weakly.  (A WeakKeyDictionary would hash code
    objects by content at every lookup, which costs microseconds.)"""

    def __init__(self):
        self._entries: dict = {}  # id(code) -> (weakref to code, entry)

    def get(self, code):
        hit = self._entries.get(id(code))
        if hit is not None and hit[0]() is code:
            return hit[1]
        return None

    def __setitem__(self, code, entry):
        key = id(code)
        entries = self._entries

        def forget(_, key=key):
            hit = entries.get(key)
            if hit is not None and hit[0]() is None:
                del entries[key]

        entries[key] = (weakref.ref(code, forget), entry)

    def __len__(self):
        return len(self._entries)


# Code objects of converted functions (and of every function nested in them) map to an entry
# that says so, so that converting them again returns them unchanged.
_CACHE = _CodeCache()


def _no(reason: str, unconverted=None) -> _Entry:
    return _Entry(reason=reason, unconverted=unconverted)


_ALREADY = _no("already converted")


# ------------------------------------------------------------------------------------------------
# Getting the source
# ------------------------------------------------------------------------------------------------


def _mangle(cls: str | None, name: str) -> str:
    if not cls or not name.startswith("__") or name.endswith("__") or "." in name:
        return name
    stripped = cls.lstrip("_")
    return f"_{stripped}{name}" if stripped else name


def _class_of(qualname: str) -> str | None:
    """The innermost class in a `__qualname__` (`C.m` -> C, `C.m.<locals>.g` -> C)."""
    parts = qualname.split(".")
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] != "<locals>" and parts[i + 1] != "<locals>":
            return parts[i]
    return None


def _all_code_names(code) -> set:
    names, stack = set(), [code]
    while stack:
        c = stack.pop()
        names.update(c.co_names, c.co_varnames, c.co_freevars, c.co_cellvars)
        stack.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
    return names


def _parse_file(filename: str, lines: list):
    """(tree, code objects by (name, first line)) of a source file, or None; cached by content.
    The whole file is compiled, because code compiles differently out of its context (a name
    bound by an import is called with other instructions)."""
    key = (filename, hash(tuple(lines)))
    if key not in _FILES:
        try:
            tree = ast.parse("".join(lines), filename)
            codes: dict = collections.defaultdict(list)
            stack = [compile(tree, filename, "exec", dont_inherit=True)]
            while stack:
                c = stack.pop()
                codes[c.co_name, c.co_firstlineno].append(c)
                stack.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
            parsed = (tree, codes)
        except (SyntaxError, ValueError):
            parsed = None
        if len(_FILES) > 64:
            _FILES.clear()
        _FILES[key] = parsed
    return _FILES[key]


_FILES: dict = {}


def _find_source(fn):
    """The `def` or lambda in `fn`'s source file that compiles to `fn`'s code, or a reason
    string.  The source is looked up from the code object, never through `__wrapped__` (a
    decorator's wrapper is its own function), and must compile to the code that runs: a file
    edited after import does not."""
    code = fn.__code__
    lines = linecache.getlines(code.co_filename, fn.__globals__)
    if not lines:
        return "its source code is not available"
    parsed = _parse_file(code.co_filename, lines)
    if parsed is None:
        return "its source code could not be parsed"
    tree, codes = parsed
    compiled = codes.get((code.co_name, code.co_firstlineno), [])
    if not any(_same_code(c, code) for c in compiled):
        return ("its source code is not the code that runs (was its file edited after it was "
                "imported?)")
    nodes = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Lambda):
            if code.co_name == "<lambda>" and n.lineno == code.co_firstlineno:
                nodes.append(n)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == code.co_name:
            if (n.decorator_list[0].lineno if n.decorator_list else n.lineno) \
                    == code.co_firstlineno:
                nodes.append(n)
    if len(nodes) != len(compiled):
        return "its source code is ambiguous"
    # Several on one line (lambdas): the compiler makes their code in source order.
    nodes.sort(key=lambda n: n.col_offset)
    compiled.sort(key=_first_column)
    node = next(n for n, c in zip(nodes, compiled) if _same_code(c, code))
    if isinstance(node, ast.AsyncFunctionDef):
        return "a coroutine"
    return copy.deepcopy(node)  # the file's tree is cached: edit a copy


def _first_column(code) -> int:
    return next((col for _, _, col, _ in code.co_positions() if col), 0)


def _same_code(a, b) -> bool:
    """Whether two code objects do the same thing (line numbers and names of nested scopes
    aside): the check that the source we read is the code that runs."""
    if a.co_code != b.co_code or len(a.co_consts) != len(b.co_consts):
        return False
    for attr in ("co_names", "co_varnames", "co_freevars", "co_cellvars", "co_argcount",
                 "co_posonlyargcount", "co_kwonlyargcount"):
        if getattr(a, attr) != getattr(b, attr):
            return False
    for x, y in zip(a.co_consts, b.co_consts):
        if isinstance(x, types.CodeType) and isinstance(y, types.CodeType):
            if not _same_code(x, y):
                return False
        elif type(x) is not type(y) or (x != y and x == x):
            return False
    return True


# ------------------------------------------------------------------------------------------------
# Analysis helpers (on ASTs)
# ------------------------------------------------------------------------------------------------


def _walk_scope(node):
    """Nodes of `node`'s subtree that belong to the same scope (not inside nested functions,
    lambdas, classes or comprehensions), excluding `node` itself if it is such a scope."""
    stack = list(ast.iter_child_nodes(node))
    while stack:
        n = stack.pop()
        yield n
        if isinstance(n, _SCOPES + _COMPREHENSIONS):
            continue
        stack.extend(ast.iter_child_nodes(n))


def _has_return(stmt) -> bool:
    if isinstance(stmt, ast.Return):
        return True
    return any(isinstance(n, ast.Return) for n in _walk_scope(stmt))


def _import_names(node) -> list:
    out = []
    for alias in node.names:
        if alias.name == "*":
            continue
        out.append(alias.asname or alias.name.split(".")[0])
    return out


def _bound(stmts):
    """Names the statements bind in their own scope, in order of first binding; and the names
    bound by `except ... as name`."""
    names: dict = {}
    handlers: set = set()

    def visit(n):
        if isinstance(n, ast.Name):
            if isinstance(n.ctx, ast.Store):
                names.setdefault(n.id, None)
            return
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.setdefault(n.name, None)
            return
        if isinstance(n, ast.Lambda):
            return
        if isinstance(n, _COMPREHENSIONS):
            for m in ast.walk(n):  # `:=` in a comprehension binds in the enclosing scope
                if isinstance(m, ast.NamedExpr) and isinstance(m.target, ast.Name):
                    names.setdefault(m.target.id, None)
            return
        if isinstance(n, (ast.Import, ast.ImportFrom)):
            for name in _import_names(n):
                names.setdefault(name, None)
            return
        if isinstance(n, ast.ExceptHandler) and n.name:
            handlers.add(n.name)
        if type(n).__name__ in ("MatchAs", "MatchStar") and getattr(n, "name", None):
            names.setdefault(n.name, None)
        if type(n).__name__ == "MatchMapping" and getattr(n, "rest", None):
            names.setdefault(n.rest, None)
        for c in ast.iter_child_nodes(n):
            visit(c)

    for s in stmts:
        visit(s)
    return list(names), handlers


class _Reads:
    """Which names a node may read (conservatively: Load and Del of a name anywhere in its
    subtree, nested scopes included, and the target of `x += ...`)."""

    def __init__(self):
        self._memo: dict = {}

    def counts(self, nodes) -> collections.Counter:
        c: collections.Counter = collections.Counter()
        for node in nodes:
            for n in ast.walk(node):
                if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Store):
                    c[n.id] += 1
                elif isinstance(n, ast.AugAssign) and isinstance(n.target, ast.Name):
                    c[n.target.id] += 1
        return c

    def names(self, node) -> frozenset:
        if node is None:
            return frozenset()
        key = id(node)
        hit = self._memo.get(key)
        if hit is not None and hit[0] is node:
            return hit[1]
        out = frozenset(self.counts([node]))
        self._memo[key] = (node, out)
        return out

    def any(self, x, *nodes) -> bool:
        return any(x in self.names(n) for n in nodes if n is not None)


def _binds(target, x) -> bool:
    return any(isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store) and n.id == x
               for n in ast.walk(target))


def _flow_block(reads: _Reads, stmts, x):
    """(may read `x` before assigning it, assigns `x` on every path), conservatively."""
    for s in stmts:
        r, a = _flow_stmt(reads, s, x)
        if r:
            return True, False
        if a:
            return False, True
    return False, False


def _flow_stmt(reads: _Reads, s, x):
    if isinstance(s, ast.Assign):
        if reads.any(x, s.value, *s.targets):
            return True, False
        return False, any(_binds(t, x) for t in s.targets)
    if isinstance(s, ast.AugAssign):
        if _binds(s.target, x) or reads.any(x, s.value, s.target):
            return True, False
        return False, False
    if isinstance(s, ast.AnnAssign):
        if reads.any(x, s.value, s.target):
            return True, False
        return False, s.value is not None and _binds(s.target, x)
    if isinstance(s, ast.If):
        if reads.any(x, s.test):
            return True, False
        r1, a1 = _flow_block(reads, s.body, x)
        r2, a2 = _flow_block(reads, s.orelse, x)
        return r1 or r2, a1 and a2
    if isinstance(s, (ast.For, ast.AsyncFor)):
        if reads.any(x, s.iter, s.target):
            return True, False
        if not _binds(s.target, x) and _flow_block(reads, s.body, x)[0]:
            return True, False
        return _flow_block(reads, s.orelse, x)[0], False
    if isinstance(s, ast.While):
        if reads.any(x, s.test) or _flow_block(reads, s.body, x)[0]:
            return True, False
        return _flow_block(reads, s.orelse, x)[0], False
    if isinstance(s, (ast.With, ast.AsyncWith)):
        for item in s.items:
            if reads.any(x, item.context_expr, item.optional_vars):
                return True, False
            if item.optional_vars is not None and _binds(item.optional_vars, x):
                return False, True
        return _flow_block(reads, s.body, x)
    if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        if reads.any(x, s):
            return True, False
        return False, s.name == x
    if isinstance(s, (ast.Import, ast.ImportFrom)):
        return False, x in _import_names(s)
    return reads.any(x, s), False


_BLOCKING_KEYWORDS = {ast.Break: "a `break`", ast.Continue: "a `continue`",
                      ast.Return: "a `return`", ast.Yield: "a `yield`",
                      ast.YieldFrom: "a `yield from`", ast.Await: "an `await`",
                      ast.Delete: "a `del` statement", ast.Global: "a `global` statement",
                      ast.Nonlocal: "a `nonlocal` statement"}


def _bad_target(target):
    for n in ast.walk(target):
        if isinstance(n, (ast.Attribute, ast.Subscript)):
            return n
    return None


def _blocker(stmts):
    """(what, lineno) of the first thing in `stmts` that a nested function cannot do, or None."""

    def visit(n, depth):
        if isinstance(n, _SCOPES):
            return None
        kind = type(n)
        if kind in (ast.Break, ast.Continue):
            return (_BLOCKING_KEYWORDS[kind], n.lineno) if depth == 0 else None
        if kind in _BLOCKING_KEYWORDS:
            return _BLOCKING_KEYWORDS[kind], n.lineno
        targets = ()
        if kind is ast.Assign:
            targets = n.targets
        elif kind in (ast.AugAssign, ast.AnnAssign, ast.For, ast.AsyncFor):
            targets = (n.target,)
        elif kind in (ast.With, ast.AsyncWith):
            targets = tuple(i.optional_vars for i in n.items if i.optional_vars is not None)
        for t in targets:
            bad = _bad_target(t)
            if bad is not None:
                what = "an attribute" if isinstance(bad, ast.Attribute) else "a subscript"
                return f"an assignment to {what} (`{_short(bad)} = ...`)", n.lineno
        if kind in (ast.For, ast.AsyncFor, ast.While):
            for c in ast.iter_child_nodes(n):
                r = visit(c, depth + 1 if any(c is b for b in n.body) else depth)
                if r:
                    return r
            return None
        for c in ast.iter_child_nodes(n):
            r = visit(c, depth)
            if r:
                return r
        return None

    for s in stmts:
        r = visit(s, 0)
        if r:
            return r
    return None


def _short(node) -> str:
    try:
        text = ast.unparse(node)
    except Exception:  # noqa: BLE001
        return "..."
    return text if len(text) <= 40 else text[:37] + "..."


# ------------------------------------------------------------------------------------------------
# Early returns
# ------------------------------------------------------------------------------------------------


def _terminates(block) -> bool:
    if not block:
        return False
    last = block[-1]
    if isinstance(last, (ast.Return, ast.Raise)):
        return True
    if isinstance(last, ast.If):
        return _terminates(last.body) and _terminates(last.orelse)
    return False


def _fold_if(s: ast.If, rest: list):
    """`s` followed by `rest`, as one `if` whose every branch ends in `return` (or `raise`), or
    None if its returns are not all in tail position."""
    bt, ot = _terminates(s.body), _terminates(s.orelse)
    if not bt and not ot:
        return None  # both branches fall through: `rest` would be duplicated
    if bt and ot and rest:
        return None  # dead code after the `if`: keep the function as it is
    body = _fold_block(s.body if bt else s.body + rest, s)
    orelse = _fold_block(s.orelse if ot else s.orelse + rest, s)
    if body is None or orelse is None:
        return None
    return ast.copy_location(ast.If(test=s.test, body=body, orelse=orelse), s)


def _fold_block(block, where):
    for k, s in enumerate(block):
        if isinstance(s, ast.Return):
            return block if k == len(block) - 1 else None
        if isinstance(s, ast.If) and _has_return(s):
            new = _fold_if(s, block[k + 1:])
            return None if new is None else block[:k] + [new]
        if _has_return(s):
            return None
    if block and isinstance(block[-1], ast.Raise):
        return block
    last = block[-1] if block else where
    ret = ast.Return(value=None)
    ret.lineno, ret.col_offset = last.lineno, last.col_offset
    ret.end_lineno, ret.end_col_offset = last.lineno, last.col_offset
    return block + [ret]


def _assign_returns(block):
    last = block[-1]
    if isinstance(last, ast.Return):
        value = last.value if last.value is not None else ast.copy_location(
            ast.Constant(value=None), last)
        assign = ast.Assign(targets=[ast.Name(id=RETURN_VALUE, ctx=ast.Store())], value=value)
        return block[:-1] + [ast.copy_location(assign, last)]
    if isinstance(last, ast.If):
        last.body = _assign_returns(last.body)
        last.orelse = _assign_returns(last.orelse)
    return block


def _fold_returns(body):
    """Rewrite the first foldable early-return `if` at the top level of a function body."""
    for k, s in enumerate(body):
        if isinstance(s, ast.If) and _has_return(s):
            new = _fold_if(s, body[k + 1:])
            if new is None:
                continue
            new.body = _assign_returns(new.body)
            new.orelse = _assign_returns(new.orelse)
            ret = ast.Return(value=ast.Name(id=RETURN_VALUE, ctx=ast.Load()))
            _locate(ret, _header(s))
            return body[:k] + [new, ret], True
    return body, False


# ------------------------------------------------------------------------------------------------
# Rewriting
# ------------------------------------------------------------------------------------------------


def _header(s):
    """Position of a compound statement's header: from its keyword to the end of its test."""
    end = getattr(s, "test", None) or getattr(s, "iter", None) or s
    return (s.lineno, s.col_offset, end.end_lineno or s.lineno,
            end.end_col_offset if end.end_col_offset is not None else s.col_offset)


def _locate(node, loc):
    """Give `node` and every node under it that has no position yet (or a template position)
    the position `loc`."""
    lineno, col, end_lineno, end_col = loc
    for n in ast.walk(node):
        if "lineno" in n._attributes:
            n.lineno, n.col_offset, n.end_lineno, n.end_col_offset = lineno, col, end_lineno, \
                end_col
    return node


def _rt(attr):
    return ast.Attribute(value=ast.Name(id=RUNTIME_NAME, ctx=ast.Load()), attr=attr,
                         ctx=ast.Load())


def _names_tuple(names, ctx):
    return ast.Tuple(elts=[ast.Name(id=n, ctx=ctx()) for n in names], ctx=ctx())


def _strings_tuple(names):
    return ast.Tuple(elts=[ast.Constant(value=n) for n in names], ctx=ast.Load())


def _make_def(name, params, body, loc):
    node = ast.parse(f"def {name}({', '.join(params)}):\n    pass").body[0]
    _locate(node, loc)
    node.body = body or [_locate(ast.Pass(), loc)]
    return node


def _undefined_inits(names, loc):
    out = []
    for n in names:
        call = ast.Call(func=_rt("Undefined"), args=[ast.Constant(value=n)], keywords=[])
        out.append(_locate(ast.Assign(targets=[ast.Name(id=n, ctx=ast.Store())], value=call),
                           loc))
    return out


def _params(args: ast.arguments) -> set:
    out = {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs}
    if args.vararg:
        out.add(args.vararg.arg)
    if args.kwarg:
        out.add(args.kwarg.arg)
    return out


class _WrapCalls(ast.NodeTransformer):
    """`f(...)` -> `__jg.converted_call(f, ...)`, except for builtins and `__jg.*`."""

    def __init__(self, keep: set):
        self.keep = keep
        self.count = 0

    def visit_ClassDef(self, node):
        return node

    def visit_Call(self, node):
        self.generic_visit(node)
        f = node.func
        if isinstance(f, ast.Name) and f.id in self.keep:
            return node
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) \
                and f.value.id == RUNTIME_NAME:
            return node
        self.count += 1
        func = ast.copy_location(_rt("converted_call"), f)
        ast.copy_location(func.value, f)
        return ast.copy_location(ast.Call(func=func, args=[f] + node.args,
                                          keywords=node.keywords), node)


class _LiveReads(ast.NodeTransformer):
    """Reads of the user's scope go through the runtime: a global or closure variable `w`
    becomes `__jg.ld(w)`, and an attribute `a.b` becomes `__jg.attr(a, "b")`.  While a function
    is traced, the runtime makes arrays read there kernel arguments (so that changing them in
    place is seen by the next call) and watches the rest (watch.py): nothing that can change is
    folded into a kernel unwatched.  Builtins that are not shadowed stay plain names."""

    def __init__(self, local: set, keep: set, cls: str | None):
        self.scopes = [local]
        self.keep, self.cls = keep, cls  # private `__names` are mangled by us, as in `cls`
        self.count = 0

    def _call(self, attr, args, node):
        self.count += 1
        func = _rt(attr)
        return ast.copy_location(ast.Call(func=func, args=args, keywords=[]), node)

    def visit_Name(self, node):
        name = node.id
        if not isinstance(node.ctx, ast.Load) or name in self.keep or name.startswith(_PREFIX) \
                or name == "__class__" or any(name in scope for scope in self.scopes):
            return node
        return self._call("ld", [node], node)

    def visit_Call(self, node):
        # A called name is watched by its function's globals (control.converted_call), and a
        # function is never an array: `f(x)` stays as it is.
        if not isinstance(node.func, ast.Name):
            node.func = self.visit(node.func)
        node.args = [self.visit(a) for a in node.args]
        node.keywords = [self.visit(k) for k in node.keywords]
        return node

    def visit_Attribute(self, node):
        self.generic_visit(node)
        if not isinstance(node.ctx, ast.Load) or (isinstance(node.value, ast.Name)
                                                  and node.value.id == RUNTIME_NAME):
            return node
        name = ast.Constant(value=_mangle(self.cls, node.attr))
        return self._call("attr", [node.value, name], node)

    def visit_ClassDef(self, node):
        return node  # class bodies run as they are

    def visit_FunctionDef(self, node):
        names = _params(node.args) | set(_bound(node.body)[0]) | _bound(node.body)[1]
        node.args.defaults = [self.visit(d) for d in node.args.defaults]
        node.args.kw_defaults = [d if d is None else self.visit(d)
                                 for d in node.args.kw_defaults]
        node.decorator_list = [self.visit(d) for d in node.decorator_list]
        self.scopes.append(names)
        node.body = [self.visit(s) for s in node.body]
        self.scopes.pop()
        return node

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node):
        node.args.defaults = [self.visit(d) for d in node.args.defaults]
        node.args.kw_defaults = [d if d is None else self.visit(d)
                                 for d in node.args.kw_defaults]
        self.scopes.append(_params(node.args))
        node.body = self.visit(node.body)
        self.scopes.pop()
        return node

    def _comprehension(self, node, fields):
        names = {n.id for g in node.generators for n in ast.walk(g.target)
                 if isinstance(n, ast.Name)}
        first = node.generators[0]
        first.iter = self.visit(first.iter)  # evaluated in the enclosing scope
        self.scopes.append(names)
        for g in node.generators:
            if g is not first:
                g.iter = self.visit(g.iter)
            g.ifs = [self.visit(c) for c in g.ifs]
        for field in fields:
            setattr(node, field, self.visit(getattr(node, field)))
        self.scopes.pop()
        return node

    def visit_ListComp(self, node):
        return self._comprehension(node, ("elt",))

    visit_SetComp = visit_GeneratorExp = visit_ListComp

    def visit_DictComp(self, node):
        return self._comprehension(node, ("key", "value"))


class _SuperCalls(ast.NodeTransformer):
    """`super()` -> `super(__class__, self)` in the function's own scope."""

    def __init__(self, first: str):
        self.first = first

    def visit_FunctionDef(self, node):
        return node

    visit_AsyncFunctionDef = visit_ClassDef = visit_Lambda = visit_FunctionDef

    def visit_Call(self, node):
        self.generic_visit(node)
        if isinstance(node.func, ast.Name) and node.func.id == "super" and not node.args \
                and not node.keywords:
            node.args = [ast.copy_location(ast.Name(id="__class__", ctx=ast.Load()), node),
                         ast.copy_location(ast.Name(id=self.first, ctx=ast.Load()), node)]
        return node


class _Converter:
    def __init__(self, filename: str, range_is_builtin: bool):
        self.filename = filename
        self.range_is_builtin = range_is_builtin
        self.unconverted: dict = {}
        self.changed = False
        self.reads = _Reads()
        self.totals: list = []  # per enclosing user function: Counter of names read in it
        self.used: set = set()

    # --- helpers ---------------------------------------------------------------------------
    def name(self, kind, lineno):
        base = f"{_PREFIX}_{kind}_{lineno}"
        name, k = base, 1
        while name in self.used:
            k += 1
            name = f"{base}_{k}"
        self.used.add(name)
        return name

    def where(self, s) -> str:
        return f"{self.filename}:{s.lineno}"

    def record(self, s, reason):
        self.unconverted[(self.filename, s.lineno)] = reason

    def carried(self, candidates, blocks):
        """The candidates that the rest of the function may read (see the module docstring)."""
        inside: collections.Counter = collections.Counter()
        for b in blocks:
            inside += self.reads.counts(b)
        total = self.totals[-1]
        out = []
        for x in candidates:
            if total[x] > inside[x] or any(_flow_block(self.reads, b, x)[0] for b in blocks):
                out.append(x)
        return out

    # --- functions --------------------------------------------------------------------------
    def function(self, fdef):
        """Convert a user function's body in place."""
        body, folded = _fold_returns(fdef.body)
        self.changed |= folded
        self.totals.append(self.reads.counts(body))
        try:
            new, inits = self.scope_block(body, _params(fdef.args))
        finally:
            self.totals.pop()
        if inits:
            start = 0
            if new and isinstance(new[0], ast.Expr) and isinstance(new[0].value, ast.Constant) \
                    and isinstance(new[0].value.value, str):
                start = 1  # keep the docstring first
            first = new[start] if start < len(new) else new[0]
            loc = (first.lineno, first.col_offset, first.lineno, first.col_offset)
            new[start:start] = _undefined_inits(inits, loc)
        fdef.body = new
        return fdef

    def body_function(self, name, params, stmts, results, loc, prologue=()):
        """A generated function: `def name(*params): <prologue> <stmts> return (*results,)`."""
        body, inits = self.scope_block(stmts, params)
        ret = _locate(ast.Return(value=_names_tuple(results, ast.Load)), loc)
        return _make_def(name, params, list(prologue) + _undefined_inits(inits, loc) + body
                         + [ret], loc)

    def scope_block(self, stmts, params):
        """The statements of a function body, converted, and the names to initialise to
        `Undefined` at its top: those carried by a converted statement that may not be assigned
        when the statement runs (not parameters, not assigned on every path before it)."""
        out, inits, assigned = [], {}, set(params)
        for s in stmts:
            bound, _ = _bound([s])
            always = {x for x in bound if x not in assigned and _flow_stmt(self.reads, s, x)[1]}
            new, carried = self.stmt(s)
            for n in carried:
                if n not in assigned:
                    inits.setdefault(n, None)
            assigned |= always
            out.extend(new)
        return out, list(inits)

    # --- statements -------------------------------------------------------------------------
    def block(self, stmts):
        out, carried = [], {}
        for s in stmts:
            new, c = self.stmt(s)
            out.extend(new)
            for n in c:
                carried.setdefault(n, None)
        return out, list(carried)

    def inside(self, s, *fields):
        """Convert the statement lists of an unconverted statement in place."""
        carried = {}
        for f in fields:
            stmts = getattr(s, f, None)
            if stmts:
                new, c = self.block(stmts)
                setattr(s, f, new)
                carried.update(dict.fromkeys(c))
        return [s], list(carried)

    def stmt(self, s):
        if isinstance(s, ast.If):
            return self.if_stmt(s)
        if isinstance(s, ast.While):
            return self.while_stmt(s)
        if isinstance(s, ast.For):
            return self.for_stmt(s)
        if isinstance(s, ast.FunctionDef):
            if not any(isinstance(n, (ast.Yield, ast.YieldFrom, ast.Await))
                       for n in _walk_scope(s)):
                self.function(s)
            return [s], []
        if isinstance(s, (ast.With, ast.AsyncWith)):
            return self.inside(s, "body")
        if isinstance(s, _TRY_NODES):
            _, carried = self.inside(s, "body", "orelse", "finalbody")
            for h in s.handlers:
                h.body, c = self.block(h.body)
                carried += [n for n in c if n not in carried]
            return [s], carried
        if type(s).__name__ == "Match":
            carried = []
            for case in s.cases:
                case.body, c = self.block(case.body)
                carried += [n for n in c if n not in carried]
            return [s], carried
        if isinstance(s, ast.AsyncFor):
            return self.inside(s, "body", "orelse")
        return [s], []

    def blocked(self, s, stmts, what):
        b = _blocker(stmts)
        if b is not None:
            return f"{b[0]} inside {what} (line {b[1]})"
        return None

    def handler_conflict(self, stmts, names, what):
        _, handlers = _bound(stmts)
        both = [n for n in names if n in handlers]
        if both:
            return f"an `except ... as {both[0]}` whose name is also assigned inside {what}"
        return None

    def if_stmt(self, s):
        reason = self.blocked(s, s.body + s.orelse, "the `if`")
        names = []
        if reason is None:
            candidates, _ = _bound(s.body + s.orelse)
            names = self.carried(candidates, [s.body, s.orelse])
            reason = self.handler_conflict(s.body + s.orelse, names, "the `if`")
        if reason is not None:
            self.record(s, reason)
            return self.inside(s, "body", "orelse")
        loc = _header(s)
        true_name, false_name = self.name("if_true", s.lineno), self.name("if_false", s.lineno)
        true_def = self.body_function(true_name, names, s.body, names, loc)
        false_def = self.body_function(false_name, names, s.orelse, names, loc)
        call = ast.Call(func=_rt("if_stmt"), args=[
            s.test, ast.Name(id=true_name, ctx=ast.Load()),
            ast.Name(id=false_name, ctx=ast.Load()), _names_tuple(names, ast.Load),
            _strings_tuple(names), ast.Constant(value=self.where(s))], keywords=[])
        self.changed = True
        return [true_def, false_def, self.assign(names, call, loc)], names

    def assign(self, names, call, loc):
        if names:
            stmt = ast.Assign(targets=[_names_tuple(names, ast.Store)], value=call)
        else:
            stmt = ast.Expr(value=call)
        for n in ast.walk(stmt):  # position the generated nodes, not the user's test
            if "lineno" in n._attributes and not hasattr(n, "lineno"):
                n.lineno, n.col_offset, n.end_lineno, n.end_col_offset = loc
        return stmt

    def while_stmt(self, s):
        reason = self.blocked(s, s.body, "the loop")
        if reason is None and any(isinstance(n, ast.NamedExpr) for n in ast.walk(s.test)):
            reason = "an assignment expression (`:=`) in the loop condition"
        names = []
        if reason is None:
            candidates, _ = _bound(s.body)
            names = self.carried(candidates, [s.body])
            reason = self.handler_conflict(s.body, names, "the loop")
        if reason is not None:
            self.record(s, reason)
            return self.inside(s, "body", "orelse")
        loc = _header(s)
        cond_name, body_name = self.name("while_cond", s.lineno), self.name("while_body",
                                                                             s.lineno)
        ret = ast.Return(value=s.test)
        ret.lineno, ret.col_offset = s.test.lineno, s.test.col_offset
        ret.end_lineno, ret.end_col_offset = s.test.end_lineno, s.test.end_col_offset
        cond_def = _make_def(cond_name, names, [ret], loc)
        body_def = self.body_function(body_name, names, s.body, names, loc)
        call = ast.Call(func=_rt("while_stmt"), args=[
            ast.Name(id=cond_name, ctx=ast.Load()), ast.Name(id=body_name, ctx=ast.Load()),
            _names_tuple(names, ast.Load), _strings_tuple(names),
            ast.Constant(value=self.where(s))], keywords=[])
        self.changed = True
        orelse, carried = self.block(s.orelse)
        return [cond_def, body_def, self.assign(names, call, loc)] + orelse, \
            names + [n for n in carried if n not in names]

    def for_stmt(self, s):
        it = s.iter
        is_range = (self.range_is_builtin and isinstance(it, ast.Call)
                    and isinstance(it.func, ast.Name) and it.func.id == "range"
                    and 1 <= len(it.args) <= 3 and not it.keywords
                    and not any(isinstance(a, ast.Starred) for a in it.args)
                    and isinstance(s.target, ast.Name))
        if not is_range:
            self.record(s, "a `for` loop over something other than `range(...)` (a list, an "
                           "array, `enumerate`, `zip`, ...) runs as plain Python")
            return self.inside(s, "body", "orelse")
        reason = self.blocked(s, s.body, "the loop")
        target = s.target.id
        names = []
        if reason is None:
            candidates, _ = _bound(s.body)
            names = self.carried(candidates, [s.body])
            reason = self.handler_conflict(s.body, names + [target], "the loop")
        if reason is not None:
            self.record(s, reason)
            return self.inside(s, "body", "orelse")
        loc = _header(s)
        body_name = self.name("for_body", s.lineno)
        total = self.totals[-1]
        inside = self.reads.counts(s.body)
        prologue = []
        if target in names or total[target] > inside[target]:
            names = [target] + [n for n in names if n != target]
            index = self.name("index", s.lineno)
            params = [index] + names
            prologue = [_locate(ast.Assign(targets=[ast.Name(id=target, ctx=ast.Store())],
                                           value=ast.Name(id=index, ctx=ast.Load())), loc)]
        else:
            params = [target] + names
        body_def = self.body_function(body_name, params, s.body, names, loc, prologue)
        call = ast.Call(func=_rt("for_range_stmt"), args=[
            ast.Tuple(elts=list(it.args), ctx=ast.Load()), ast.Name(id=body_name, ctx=ast.Load()),
            _names_tuple(names, ast.Load), _strings_tuple(names),
            ast.Constant(value=self.where(s))], keywords=[])
        self.changed = True
        orelse, carried = self.block(s.orelse)
        return [body_def, self.assign(names, call, loc)] + orelse, \
            names + [n for n in carried if n not in names]


# ------------------------------------------------------------------------------------------------
# Converting one function
# ------------------------------------------------------------------------------------------------


def is_library_module(name: str, filename) -> bool:
    """Whether a module is jitgrad's, a library's (`DO_NOT_CONVERT`, installed packages) or the
    standard library's, rather than the user's."""
    if name.split(".")[0] in DO_NOT_CONVERT:
        return True
    if filename is None:
        return name in sys.builtin_module_names
    filename = os.path.normcase(os.path.abspath(filename))
    return any(filename.startswith(d) for d in _LIBRARY_DIRS)


def is_user_function(fn) -> bool:
    """Whether `fn` is the user's (converted if possible), not a library's."""
    return _skipped_module(fn) is None


def _skipped_module(fn) -> str | None:
    module = getattr(fn, "__module__", None) or fn.__globals__.get("__name__") or ""
    if module.split(".")[0] in DO_NOT_CONVERT:
        return f"a function of {module}, which jitgrad does not convert"
    filename = os.path.normcase(os.path.abspath(fn.__code__.co_filename))
    if any(filename.startswith(d) for d in _LIBRARY_DIRS):
        return "a function of the standard library or of an installed package"
    return None


def _analyse(fn) -> _Entry:
    code = fn.__code__
    if code.co_flags & _NOT_CONVERTIBLE_FLAGS:
        return _no("a generator or coroutine")
    skipped = _skipped_module(fn)
    if skipped:
        return _no(skipped)
    fdef = _find_source(fn)
    if isinstance(fdef, str):
        return _no(fdef)
    # Private `__names` are mangled as in the class the function was compiled in.
    cls = _class_of(fn.__qualname__)
    if cls is not None:
        prefix = "_" + cls.lstrip("_") + "__"
        if cls.lstrip("_") == "" or not any(n.startswith(prefix) for n in _all_code_names(code)):
            cls = None
    if isinstance(fdef, ast.Lambda):
        fdef = _lambda_def(fdef)

    # Reasons not to touch the function at all.
    bound_anywhere = set()  # names bound in any scope inside the function
    for n in ast.walk(fdef):
        if isinstance(n, (ast.Global, ast.Nonlocal)):
            return _no("it has a `global` or `nonlocal` statement")
        name = None
        if isinstance(n, ast.Name):
            name = n.id
            if not isinstance(n.ctx, ast.Load):
                bound_anywhere.add(name)
        elif isinstance(n, ast.arg):
            name = n.arg
            bound_anywhere.add(name)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = n.name
            if n is not fdef:
                bound_anywhere.add(name)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            bound_anywhere.update(_import_names(n))
        elif isinstance(n, ast.ExceptHandler) and n.name:
            name = n.name
            bound_anywhere.add(name)
        elif type(n).__name__ in ("MatchAs", "MatchStar", "MatchMapping"):
            name = getattr(n, "name", None) or getattr(n, "rest", None)
            if name:
                bound_anywhere.add(name)
        if name and name.startswith(_PREFIX):
            return _no(f"it uses the name {name}, which jitgrad reserves")
    keep = {n for n in dir(builtins)
            if n not in fn.__globals__ and n not in code.co_freevars and n not in bound_anywhere}
    for n in ast.walk(fdef):
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) \
                and n.func.id in _UNSAFE_BUILTINS and n.func.id in keep:
            return _no(f"it calls {n.func.id}(), which sees the function's local variables")

    # The function as it will be compiled: no decorators, defaults or annotations (the new
    # function gets fn's defaults, and annotations are fn's).
    shown_args = copy.deepcopy(fdef.args)  # for converted_source
    fdef.decorator_list = []
    fdef.returns = None
    args = fdef.args
    args.defaults = []
    args.kw_defaults = [None] * len(args.kwonlyargs)
    for a in args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]:
        if a is not None:
            a.annotation = None
    if hasattr(fdef, "type_comment"):
        fdef.type_comment = None

    positional = args.posonlyargs + args.args
    if "__class__" in code.co_freevars and positional:
        fdef.body = [_SuperCalls(positional[0].arg).visit(s) for s in fdef.body]

    live = _LiveReads(set(code.co_varnames) | set(code.co_cellvars), keep,
                      _class_of(fn.__qualname__))
    fdef.body = [live.visit(s) for s in fdef.body]
    wrap = _WrapCalls(keep)
    fdef.body = [wrap.visit(s) for s in fdef.body]

    converter = _Converter(code.co_filename, range_is_builtin="range" in keep)
    converter.function(fdef)
    if not converter.changed and not wrap.count and not live.count:
        return _no("there is nothing to convert", converter.unconverted)

    name = fdef.name
    new = _factory_code(fdef, code, cls)
    fdef.name = name
    if new is None:
        return _no("internal: the converted code was not found", converter.unconverted)
    runtime_var = _mangle(cls, RUNTIME_NAME)
    if not set(new.co_freevars) <= set(code.co_freevars) | {runtime_var}:
        return _no("internal: the converted code needs other closure variables",
                   converter.unconverted)
    cells = tuple(-1 if v == runtime_var else code.co_freevars.index(v) for v in new.co_freevars)
    new = new.replace(co_name=code.co_name)
    if hasattr(new, "co_qualname"):
        new = new.replace(co_qualname=code.co_qualname)
    stack = [new]
    while stack:
        c = stack.pop()
        _CACHE[c] = _ALREADY
        stack.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
    try:
        fdef.args = shown_args
        source = ast.unparse(fdef)
    except Exception:  # noqa: BLE001
        source = None
    return _Entry(new, cells, None, converter.unconverted, source)


def _factory_code(node, code, cls):
    """The def `node` compiled as `code` was: inside a factory whose parameters are
    the runtime and the closure variables, so that they are free variables of the new code;
    inside a class of the same name when `cls` is set, so that private names are mangled the same
    way; with `code`'s `from __future__` flags.  Returns the new code object, or None."""
    params = [RUNTIME_NAME] + [v for v in code.co_freevars if not (cls and v == "__class__")]
    factory_src = f"def {_PREFIX}_factory({', '.join(params)}):\n    pass\n"
    if cls is not None:
        factory_src = f"class {cls}:\n" + "".join("    " + line + "\n"
                                                  for line in factory_src.splitlines())
    module = ast.parse(factory_src)
    loc = (node.lineno, node.col_offset, node.lineno, node.col_offset)
    _locate(module, loc)
    factory = module.body[0].body[0] if cls is not None else module.body[0]
    # The def gets a reserved name: under its own name it would be a local of the factory, and a
    # recursive call would read that local instead of the global or closure variable.
    node.name = name = f"{_PREFIX}_fn"
    factory.body = [node, _locate(ast.Return(value=ast.Name(id=name, ctx=ast.Load())), loc)]
    ast.fix_missing_locations(module)
    try:
        module_code = compile(module, code.co_filename, "exec",
                              flags=code.co_flags & _FUTURE_FLAGS, dont_inherit=True)
    except SyntaxError:
        return None
    return _find_code(module_code, f"{_PREFIX}_factory", name)


def _lambda_def(node: ast.Lambda) -> ast.FunctionDef:
    """`lambda args: body` as `def <lambda>(args): return body`, at the lambda's position."""
    fdef = ast.FunctionDef(name="<lambda>", args=node.args, decorator_list=[], returns=None,
                           body=[ast.copy_location(ast.Return(value=node.body), node.body)],
                           type_comment=None, **({"type_params": []}
                                                 if sys.version_info >= (3, 12) else {}))
    return ast.copy_location(fdef, node)


def _find_code(code, factory_name, name):
    stack = [code]
    while stack:
        c = stack.pop()
        if c.co_name == factory_name:
            for k in c.co_consts:
                if isinstance(k, types.CodeType) and k.co_name == name:
                    return k
            return None
        stack.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
    return None
