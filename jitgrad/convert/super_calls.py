"""Pass: a zero-argument `super()` becomes `super(__class__, self)`, so that it keeps working
inside the branch and loop functions that the control-flow pass makes."""

from __future__ import annotations

import ast


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
