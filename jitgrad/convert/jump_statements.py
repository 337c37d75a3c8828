"""Passes: `return`, `break` and `continue` inside loops become carried flags and guarded code, as
TensorFlow's AutoGraph lowers them, so that the control-flow pass sees loops without jumps and a
loop whose exit depends on traced values compiles to one native loop.

    while c:                          __jg_break_3 = False
        A                             while __jg.and_(lambda: __jg.not_(__jg_break_3),
        if t:                                         lambda: c):
            break               ->        A
        B                                 if t:
    else:                                     __jg_break_3 = True
        E                                 if __jg.not_(__jg_break_3):
                                              B
                                      if __jg.not_(__jg_break_3):
                                          E

`continue` sets a flag reset at the top of every iteration and guards the rest of the body the
same way.  A `for` over `range(...)` with a `break` becomes a `while` over a counter (one native
loop, not an unrolled trace); a `for` over anything else stays a Python `for` whose body runs
only while the flag is down.  `return v` inside a loop becomes `__jg_loopret_N = v`, a flag and a
`break` (and `if flag: break` after every inner loop that returns), followed after the outermost
such loop by `if flag: return __jg_loopret_N`, which the early-return folding then handles.
"""

from __future__ import annotations

import ast

from .analysis import _SCOPES
from .logical_expressions import _thunk
from .templates import _PREFIX, _locate, _rt

LOOPS = (ast.While, ast.For, ast.AsyncFor)
# The variable a loop's `return` value is kept in: never read before it is set, so the runtime
# may give it a placeholder on paths that do not set it (control.if_stmt, control.while_stmt).
LOOP_RETURN = f"{_PREFIX}_loopret"


def _contains(node, kinds) -> bool:
    """Whether `node` holds a statement of `kinds` that jumps out of the enclosing loop: not
    inside a nested loop (for break/continue) or a nested function."""
    stack = list(ast.iter_child_nodes(node))
    while stack:
        n = stack.pop()
        if isinstance(n, kinds):
            return True
        if isinstance(n, _SCOPES) or (isinstance(n, LOOPS) and ast.Return not in kinds):
            continue
        stack.extend(ast.iter_child_nodes(n))
    return False


def _assign(name, value, at):
    return _locate(ast.Assign(targets=[ast.Name(id=name, ctx=ast.Store())], value=value),
                   _loc(at))


def _loc(node):
    return (node.lineno, node.col_offset, node.lineno, node.col_offset)


def _not(name, at):
    return _locate(ast.Call(func=_rt("not_"), args=[ast.Name(id=name, ctx=ast.Load())],
                            keywords=[]), _loc(at))


def _and(a, b, at):
    return _locate(ast.Call(func=_rt("and_"), args=[_thunk(a), _thunk(b)], keywords=[]),
                   _loc(at))


def _guarded(name, body, at):
    return _locate(ast.If(test=_not(name, at), body=body, orelse=[]), _loc(at))


def lower(block, kind, flag):
    """`block` with every `kind` jump (of the enclosing loop) replaced by `flag = True`, and the
    statements after one that may jump guarded by `if not flag:`."""
    out = []
    for i, s in enumerate(block):
        if isinstance(s, kind):
            out.append(_assign(flag, ast.Constant(value=True), s))
            return out  # the rest of the block is unreachable
        if not isinstance(s, LOOPS) and _contains(s, (kind,)):
            for field in ("body", "orelse", "finalbody"):
                if getattr(s, field, None):
                    setattr(s, field, lower(getattr(s, field), kind, flag))
            for part in getattr(s, "handlers", []) + getattr(s, "cases", []):
                part.body = lower(part.body, kind, flag)
            out.append(s)
            rest = block[i + 1:]
            if rest:
                out.append(_guarded(flag, lower(rest, kind, flag), s))  # at the jump's `if`
            return out
        out.append(s)
    return out


class _Pass(ast.NodeTransformer):
    def __init__(self, range_is_builtin: bool):
        self.range_is_builtin = range_is_builtin
        self.count = 0

    def name(self, kind, node):
        self.count += 1
        return f"{_PREFIX}_{kind}_{node.lineno}_{self.count}"

    def visit_FunctionDef(self, node):
        return node  # nested functions are converted on their own when they are called

    visit_AsyncFunctionDef = visit_ClassDef = visit_Lambda = visit_FunctionDef


class ContinueStatements(_Pass):
    def visit_While(self, node):
        self.generic_visit(node)
        if not any(_contains(s, (ast.Continue,)) or isinstance(s, ast.Continue)
                   for s in node.body):
            return node
        flag = self.name("continue", node)
        node.body = [_assign(flag, ast.Constant(value=False), node.body[0])] \
            + lower(node.body, ast.Continue, flag)
        return node

    visit_For = visit_While


class BreakStatements(_Pass):
    def visit_While(self, node):
        self.generic_visit(node)
        if not any(_contains(s, (ast.Break,)) or isinstance(s, ast.Break) for s in node.body):
            return node
        flag = self.name("break", node)
        node.body = lower(node.body, ast.Break, flag)
        node.test = _and(_not(flag, node), node.test, node)
        return self._with_flag(node, flag)

    def visit_For(self, node):
        self.generic_visit(node)
        if not any(_contains(s, (ast.Break,)) or isinstance(s, ast.Break) for s in node.body):
            return node
        flag = self.name("break", node)
        body = lower(node.body, ast.Break, flag)
        it = node.iter
        if (self.range_is_builtin and isinstance(it, ast.Call) and isinstance(it.func, ast.Name)
                and it.func.id == "range" and 1 <= len(it.args) <= 3 and not it.keywords
                and not any(isinstance(a, ast.Starred) for a in it.args)
                and isinstance(node.target, ast.Name)):
            # One loop over a counter: `for i in range(a, b, c)` with a data-dependent exit.
            bounds, k = self.name("range", node), self.name("index", node)
            start = ast.Subscript(value=ast.Name(id=bounds, ctx=ast.Load()),
                                  slice=ast.Constant(value=0), ctx=ast.Load())
            test = ast.Call(func=_rt("in_range"), args=[
                ast.Name(id=k, ctx=ast.Load()), ast.Name(id=bounds, ctx=ast.Load())], keywords=[])
            step = ast.BinOp(left=ast.Name(id=k, ctx=ast.Load()), op=ast.Add(), right=ast.Call(
                func=_rt("range_step"), args=[ast.Name(id=bounds, ctx=ast.Load())], keywords=[]))
            loop = ast.While(test=_and(_not(flag, node), _locate(test, _loc(node)), node),
                             body=[_assign(node.target.id, ast.Name(id=k, ctx=ast.Load()), node),
                                   _assign(k, step, node)] + body, orelse=node.orelse)
            _locate(loop, _loc(node))
            setup = [_assign(bounds, ast.Call(func=_rt("range_bounds"), args=it.args,
                                              keywords=[]), node),
                     _assign(k, start, node)]
            return setup + self._with_flag(loop, flag)
        node.body = [_guarded(flag, body, node)]
        return self._with_flag(node, flag)

    def _with_flag(self, loop, flag):
        out = [_assign(flag, ast.Constant(value=False), loop), loop]
        if loop.orelse:
            out.append(_guarded(flag, loop.orelse, loop))
            loop.orelse = []
        return out


class ReturnStatements(_Pass):
    """`return` inside loops, for the outermost loop of each statement list."""

    def visit_While(self, node):
        if not _contains(node, (ast.Return,)):
            return node
        flag, value = self.name("return", node), self.name("loopret", node)
        value = value.replace(f"{_PREFIX}_loopret", LOOP_RETURN, 1)
        self._rewrite(node, flag, value)
        ret = _locate(ast.Return(value=ast.Name(id=value, ctx=ast.Load())), _loc(node))
        after = _locate(ast.If(test=ast.Name(id=flag, ctx=ast.Load()), body=[ret], orelse=[]),
                        _loc(node))
        return [_assign(flag, ast.Constant(value=False), node), node, after]

    visit_For = visit_While

    def _rewrite(self, loop, flag, value):
        """Returns in `loop` (and its inner loops) set the flag and the value, then break."""
        def block(stmts):
            out = []
            for s in stmts:
                if isinstance(s, ast.Return):
                    v = s.value if s.value is not None else ast.Constant(value=None)
                    out += [_assign(value, v, s), _assign(flag, ast.Constant(value=True), s),
                            _locate(ast.Break(), _loc(s))]
                    continue
                if isinstance(s, _SCOPES) or not _contains(s, (ast.Return,)):
                    out.append(s)
                    continue
                for field in ("body", "orelse", "finalbody"):
                    if getattr(s, field, None):
                        setattr(s, field, block(getattr(s, field)))
                for part in getattr(s, "handlers", []) + getattr(s, "cases", []):
                    part.body = block(part.body)
                out.append(s)
                if isinstance(s, LOOPS):  # an inner loop that returned: leave this one too
                    brk = _locate(ast.Break(), _loc(s))
                    out.append(_locate(ast.If(test=ast.Name(id=flag, ctx=ast.Load()),
                                              body=[brk], orelse=[]), _loc(s)))
            return out

        loop.body = block(loop.body)  # (its `else` runs after the loop: a return there stays)
