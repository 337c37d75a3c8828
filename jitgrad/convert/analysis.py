"""Static analyses on ASTs that the passes share: which names a statement binds and reads,
which are read before being assigned, and which scope a node belongs to."""

from __future__ import annotations

import ast
import collections

_TRY_NODES = tuple(t for t in (ast.Try, getattr(ast, "TryStar", None)) if t is not None)


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)


_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


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


def _params(args: ast.arguments) -> set:
    out = {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs}
    if args.vararg:
        out.add(args.vararg.arg)
    if args.kwarg:
        out.add(args.kwarg.arg)
    return out


def _terminates(block) -> bool:
    if not block:
        return False
    last = block[-1]
    if isinstance(last, (ast.Return, ast.Raise)):
        return True
    if isinstance(last, ast.If):
        return _terminates(last.body) and _terminates(last.orelse)
    return False
