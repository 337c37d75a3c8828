"""Names and small AST builders that the conversion passes share."""

from __future__ import annotations

import ast

# The name under which converted code sees the runtime module.
RUNTIME_NAME = "__jg"


# The variable that holds the return value of a folded early-return `if`.
RETURN_VALUE = "__jg_retval"


_PREFIX = "__jg"


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


def _short(node) -> str:
    try:
        text = ast.unparse(node)
    except Exception:  # noqa: BLE001
        return "..."
    return text if len(text) <= 40 else text[:37] + "..."
