"""Pass: reads of the user's scope go through the runtime (`__jg.ld`, `__jg.attr`)."""

from __future__ import annotations

import ast

from .analysis import _bound, _params
from .source import _mangle
from .templates import _PREFIX, RUNTIME_NAME, _rt


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

    def visit_Subscript(self, node):
        # `a[i]` becomes `__jg.subscript(a, i)`: a NumPy array indexed with traced integers
        # (which NumPy would try to convert to an array) is gathered in the trace instead.
        self.generic_visit(node)
        if not isinstance(node.ctx, ast.Load):
            return node
        return self._call("subscript", [node.value, _index_expression(node.slice)], node)

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


def _index_expression(index):
    """A subscript's index as an ordinary expression: `1:n` -> `__jg.make_slice(1, n, None)`."""
    if isinstance(index, ast.Slice):
        parts = [p if p is not None else ast.Constant(value=None)
                 for p in (index.lower, index.upper, index.step)]
        return ast.copy_location(ast.Call(func=_rt("make_slice"), args=parts, keywords=[]), index)
    if isinstance(index, ast.Tuple):
        return ast.copy_location(ast.Tuple(elts=[_index_expression(e) for e in index.elts],
                                           ctx=ast.Load()), index)
    return index
