"""Pass: calls.  `f(...)` becomes `__jg.converted_call(f, ...)`, so that the functions a
converted function calls are converted too."""

from __future__ import annotations

import ast

from .templates import RUNTIME_NAME, _rt


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
