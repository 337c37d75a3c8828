"""Source-to-source conversion of Python control flow, as TensorFlow's AutoGraph and Tangent do.

Python control flow whose condition depends on a traced value (`while np.abs(term) > 1e-3:`,
`if np.sum(x * x) > 4:`) cannot run on tracers.  `convert(fn)` rewrites `fn`'s source so that
each `if`/`while`/`for` statement becomes a call of a runtime function (`jitgrad.control`,
injected into the converted code under the name `__jg`) that either runs plain Python, when the
condition turns out to be a concrete value, or records a structured branch or loop in the IR.

The passes
----------
One module per pass, run in this order on a copy of the function's AST (each one's output is
plain Python; `converted_source(fn)` prints the result):

1. ``source.py``: find the ``def`` or ``lambda`` in the function's file that compiles to the code
   that runs (a lambda becomes a ``def``);
2. ``super_calls.py``: ``super()`` -> ``super(__class__, self)``;
3. ``live_reads.py``: reads of globals, closure variables and attributes go through the runtime;
4. ``call_trees.py``: ``f(...)`` -> ``__jg.converted_call(f, ...)``;
5. ``return_statements.py`` (called by the last pass): early returns folded into ``if``/``else``;
6. ``control_flow.py``: ``if``/``while``/``for range`` -> runtime calls with body functions.

``analysis.py`` holds the static analyses they share (names bound, names read, read-before-
assigned), ``templates.py`` the names and AST builders.

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
import copy
import inspect
import os
import types
import weakref

from .analysis import _import_names
from .call_trees import _WrapCalls
from .control_flow import _Converter
from .jump_statements import BreakStatements, ContinueStatements, ReturnStatements
from .live_reads import _LiveReads
from .logical_expressions import LogicalExpressions
from .source import (_LIBRARY_DIRS, DO_NOT_CONVERT, JITGRAD_DIR, _all_code_names, _class_of,
                     _find_source, _lambda_def, _mangle, is_library_module)
from .super_calls import _SuperCalls
from .templates import _PREFIX, RETURN_VALUE, RUNTIME_NAME, _locate

__all__ = [
    "DO_NOT_CONVERT",
    "RETURN_VALUE",
    "RUNTIME_NAME",
    "UNCONVERTED",
    "convert",
    "converted_source",
    "is_library_module",
    "is_user_function",
    "not_converted_code_reason",
    "not_converted_reason",
]


# Statements left as plain Python, and why: (filename, lineno) -> reason.  jitgrad.control should
# use this very dict (`from .convert import UNCONVERTED`); a runtime with its own `UNCONVERTED`
# dict also gets the entries of every function converted for it.
UNCONVERTED: dict = {}


_UNSAFE_BUILTINS = {"locals", "vars", "eval", "exec", "dir"}


_NOT_CONVERTIBLE_FLAGS = (inspect.CO_GENERATOR | inspect.CO_COROUTINE
                          | inspect.CO_ITERABLE_COROUTINE | inspect.CO_ASYNC_GENERATOR)


_FUTURE_FLAGS = 0
for _name in __future__.all_feature_names:
    _FUTURE_FLAGS |= getattr(__future__, _name).compiler_flag


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


_RUNTIME: list = [None]


def _default_runtime():
    from .. import control
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


def is_user_function(fn) -> bool:
    """Whether `fn` is the user's (converted if possible), not a library's."""
    return _skipped_module(fn) is None


def _skipped_module(fn) -> str | None:
    module = getattr(fn, "__module__", None) or fn.__globals__.get("__name__") or ""
    if module.split(".")[0] in DO_NOT_CONVERT:
        return f"a function of {module}, which jitgrad does not convert"
    filename = os.path.normcase(os.path.abspath(fn.__code__.co_filename))
    if filename.startswith(JITGRAD_DIR):
        return "a function of jitgrad, which jitgrad does not convert"
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
    # Jumps out of loops become flags (returns first: they become breaks), then `and`/`or`/`not`
    # and conditional expressions runtime calls; the control-flow pass sees canonical loops.
    jumps = [ReturnStatements(range_is_builtin="range" in keep),
             ContinueStatements(range_is_builtin="range" in keep),
             BreakStatements(range_is_builtin="range" in keep),
             LogicalExpressions(code.co_filename)]
    for jump in jumps:
        jump.generic_visit(fdef)

    converter = _Converter(code.co_filename, range_is_builtin="range" in keep)
    converter.function(fdef)
    if not converter.changed and not wrap.count and not live.count \
            and not any(p.count for p in jumps):
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
