"""Finding a function's source: from its code object, in its file, verified to compile to the code
that runs."""

from __future__ import annotations

import ast
import collections
import copy
import linecache
import os
import sys
import sysconfig
import types

# Top-level packages whose functions are never converted (edit to taste).
DO_NOT_CONVERT = {"jitgrad", "numpy", "scipy", "numba", "llvmlite", "autograd", "jax", "jaxlib",
                  "torch", "pytest", "_pytest", "pluggy", "IPython", "ipykernel"}


def _library_dirs() -> tuple:
    dirs = set()
    try:
        paths = sysconfig.get_paths()
    except Exception:  # noqa: BLE001
        paths = {}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = paths.get(key)
        if path:
            dirs.add(os.path.normcase(os.path.abspath(path)) + os.sep)
    for path in sys.path:
        if path and os.path.basename(path) in ("site-packages", "dist-packages"):
            dirs.add(os.path.normcase(os.path.abspath(path)) + os.sep)
    return tuple(dirs)


_LIBRARY_DIRS = _library_dirs()
# jitgrad's own files, wherever it is installed (an editable install is outside site-packages):
# its functions can carry a user's `__module__` (`grad(f)` is wrapped as f), not its code.
JITGRAD_DIR = os.path.normcase(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))) + os.sep


def is_library_module(name: str, filename) -> bool:
    """Whether a module is jitgrad's, a library's (`DO_NOT_CONVERT`, installed packages) or the
    standard library's, rather than the user's."""
    if name.split(".")[0] in DO_NOT_CONVERT:
        return True
    if filename is None:
        return name in sys.builtin_module_names
    filename = os.path.normcase(os.path.abspath(filename))
    return any(filename.startswith(d) for d in (*_LIBRARY_DIRS, JITGRAD_DIR))


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
            # The definitions by the (name, first line) their code objects have, found in one
            # walk of the tree (not one per function looked up).
            defs: dict = collections.defaultdict(list)
            for n in ast.walk(tree):
                if isinstance(n, ast.Lambda):
                    defs["<lambda>", n.lineno].append(n)
                elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    line = n.decorator_list[0].lineno if n.decorator_list else n.lineno
                    defs[n.name, line].append(n)
            parsed = (tree, codes, defs)
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
    tree, codes, defs = parsed
    compiled = codes.get((code.co_name, code.co_firstlineno), [])
    if not any(_same_code(c, code) for c in compiled):
        return ("its source code is not the code that runs (was its file edited after it was "
                "imported?)")
    nodes = list(defs.get((code.co_name, code.co_firstlineno), ()))
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


def _lambda_def(node: ast.Lambda) -> ast.FunctionDef:
    """`lambda args: body` as `def <lambda>(args): return body`, at the lambda's position."""
    fdef = ast.FunctionDef(name="<lambda>", args=node.args, decorator_list=[], returns=None,
                           body=[ast.copy_location(ast.Return(value=node.body), node.body)],
                           type_comment=None, **({"type_params": []}
                                                 if sys.version_info >= (3, 12) else {}))
    return ast.copy_location(fdef, node)
