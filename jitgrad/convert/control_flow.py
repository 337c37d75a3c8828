"""Pass: `if`/`while`/`for range` statements become calls of the runtime with their bodies as
functions of the carried variables.  It runs last and sees canonical statements only."""

from __future__ import annotations

import ast
import collections

from .analysis import (
    _SCOPES,
    _TRY_NODES,
    _bound,
    _flow_block,
    _flow_stmt,
    _params,
    _Reads,
    _walk_scope,
)
from .return_statements import _fold_returns
from .templates import (
    _PREFIX,
    _header,
    _locate,
    _make_def,
    _names_tuple,
    _rt,
    _short,
    _strings_tuple,
    _undefined_inits,
)

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
