"""Passes: `and`, `or`, `not` and conditional expressions become calls of the runtime, which keeps
Python's meaning for concrete values (short-circuit: the right operand is not evaluated when the
left one decides) and makes traced ones elementwise choices or compiled branches:

    a and b          ->  __jg.and_(lambda: a, lambda: b)
    a or b           ->  __jg.or_(lambda: a, lambda: b)
    not a            ->  __jg.not_(a)
    x if c else y    ->  __jg.if_exp(c, lambda: x, lambda: y, "file:line")

Operands that hold an assignment expression (`:=`), `yield` or `await` are left alone: inside a
lambda they would mean something else.
"""

from __future__ import annotations

import ast

from .templates import _rt

_UNLIFTABLE = (ast.NamedExpr, ast.Yield, ast.YieldFrom, ast.Await)


def _liftable(*nodes) -> bool:
    return not any(isinstance(n, _UNLIFTABLE) for node in nodes for n in ast.walk(node))


def _thunk(expr):
    args = ast.arguments(posonlyargs=[], args=[], vararg=None, kwonlyargs=[], kw_defaults=[],
                         kwarg=None, defaults=[])
    return ast.copy_location(ast.Lambda(args=args, body=expr), expr)


def _call(node, attr, args):
    func = ast.copy_location(_rt(attr), node)
    ast.copy_location(func.value, node)
    return ast.copy_location(ast.Call(func=func, args=args, keywords=[]), node)


class LogicalExpressions(ast.NodeTransformer):
    def __init__(self, filename: str):
        self.filename = filename
        self.count = 0

    def visit_ClassDef(self, node):
        return node

    def visit_BoolOp(self, node):
        self.generic_visit(node)
        if not _liftable(node):
            return node
        self.count += 1
        name = "and_" if isinstance(node.op, ast.And) else "or_"
        return _call(node, name, [_thunk(v) for v in node.values])

    def visit_UnaryOp(self, node):
        self.generic_visit(node)
        if not isinstance(node.op, ast.Not):
            return node
        self.count += 1
        return _call(node, "not_", [node.operand])

    def visit_IfExp(self, node):
        self.generic_visit(node)
        if not _liftable(node):
            return node
        self.count += 1
        where = ast.Constant(value=f"{self.filename}:{node.lineno}")
        return _call(node, "if_exp", [node.test, _thunk(node.body), _thunk(node.orelse), where])
