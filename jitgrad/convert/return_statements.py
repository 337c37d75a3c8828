"""Pass: early returns.  An `if` at the top level of a function body whose branches end in
`return` takes the rest of the body as its `else`, so that a traced condition can be compiled."""

from __future__ import annotations

import ast

from .analysis import _has_return, _terminates
from .templates import RETURN_VALUE, _header, _locate


def _fold_if(s: ast.If, rest: list):
    """`s` followed by `rest`, as one `if` whose every branch ends in `return` (or `raise`), or
    None if its returns are not all in tail position."""
    bt, ot = _terminates(s.body), _terminates(s.orelse)
    if not bt and not ot:
        return None  # both branches fall through: `rest` would be duplicated
    if bt and ot and rest:
        return None  # dead code after the `if`: keep the function as it is
    body = _fold_block(s.body if bt else s.body + rest, s)
    orelse = _fold_block(s.orelse if ot else s.orelse + rest, s)
    if body is None or orelse is None:
        return None
    return ast.copy_location(ast.If(test=s.test, body=body, orelse=orelse), s)


def _fold_block(block, where):
    for k, s in enumerate(block):
        if isinstance(s, ast.Return):
            return block if k == len(block) - 1 else None
        if isinstance(s, ast.If) and _has_return(s):
            new = _fold_if(s, block[k + 1:])
            return None if new is None else block[:k] + [new]
        if _has_return(s):
            return None
    if block and isinstance(block[-1], ast.Raise):
        return block
    last = block[-1] if block else where
    ret = ast.Return(value=None)
    ret.lineno, ret.col_offset = last.lineno, last.col_offset
    ret.end_lineno, ret.end_col_offset = last.lineno, last.col_offset
    return block + [ret]


def _assign_returns(block):
    last = block[-1]
    if isinstance(last, ast.Return):
        value = last.value if last.value is not None else ast.copy_location(
            ast.Constant(value=None), last)
        assign = ast.Assign(targets=[ast.Name(id=RETURN_VALUE, ctx=ast.Store())], value=value)
        return block[:-1] + [ast.copy_location(assign, last)]
    if isinstance(last, ast.If):
        last.body = _assign_returns(last.body)
        last.orelse = _assign_returns(last.orelse)
    return block


def _fold_returns(body):
    """Rewrite the first foldable early-return `if` at the top level of a function body."""
    for k, s in enumerate(body):
        if isinstance(s, ast.If) and _has_return(s):
            new = _fold_if(s, body[k + 1:])
            if new is None:
                continue
            new.body = _assign_returns(new.body)
            new.orelse = _assign_returns(new.orelse)
            ret = ast.Return(value=ast.Name(id=RETURN_VALUE, ctx=ast.Load()))
            _locate(ret, _header(s))
            return body[:k] + [new, ret], True
    return body, False
