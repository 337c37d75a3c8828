"""The source-to-source converter (jitgrad/convert/), run with a pure-Python stand-in for the
runtime: every converted function must compute exactly what the original computes."""

import ast
import functools
import gc
import linecache
import math
import sys
import traceback
import types

import pytest

from jitgrad import convert as convert_module
from jitgrad.convert import (
    RETURN_VALUE,
    UNCONVERTED,
    convert,
    converted_source,
    not_converted_reason,
)

THIS_FILE = __file__

# ------------------------------------------------------------------------------------------------
# A stand-in runtime with plain Python semantics, which also checks the calling contract
# ------------------------------------------------------------------------------------------------

RT = types.ModuleType("standin_runtime")
RT.UNCONVERTED = {}
RT.calls = []  # (kind, names, where)


class Undefined:
    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"<undefined {self.name}>"


def _check(kind, init, names, where, result=None):
    assert isinstance(init, tuple) and isinstance(names, tuple)
    assert len(init) == len(names) and all(isinstance(n, str) for n in names)
    filename, _, line = where.rpartition(":")
    text = linecache.getline(filename, int(line)).strip()
    # (The `if`s that lower jumps out of loops are placed at the jump's `if` or at the loop.)
    keyword = {"if": ("if ", "elif ", "while ", "for "), "while": ("while ", "for "),
               "for": ("for ",)}[kind]
    assert text.startswith(keyword), (where, text)
    if result is not None:
        assert isinstance(result, tuple) and len(result) == len(names)
    RT.calls.append((kind, names, where))


def if_stmt(cond, true_fn, false_fn, init, names, where):
    _check("if", init, names, where)
    out = (true_fn if cond else false_fn)(*init)
    _check("if", init, names, where, out)
    return out


def while_stmt(cond_fn, body_fn, init, names, where):
    _check("while", init, names, where)
    vals = init
    while cond_fn(*vals):
        vals = body_fn(*vals)
        _check("while", init, names, where, vals)
    return vals


def for_range_stmt(range_args, body_fn, init, names, where):
    _check("for", init, names, where)
    assert isinstance(range_args, tuple) and 1 <= len(range_args) <= 3
    vals = init
    for i in range(*range_args):
        vals = body_fn(i, *vals)
        _check("for", init, names, where, vals)
    return vals


def converted_call(f, /, *args, **kwargs):
    return convert(f, runtime=RT)(*args, **kwargs)


RT.Undefined, RT.if_stmt, RT.while_stmt = Undefined, if_stmt, while_stmt
RT.for_range_stmt, RT.converted_call = for_range_stmt, converted_call
RT.ld, RT.attr = (lambda value: value), getattr  # reads of the user's scope, unchanged
RT.subscript, RT.make_slice = (lambda value, index: value[index]), slice


def and_(*thunks):
    value = thunks[0]()
    for thunk in thunks[1:]:
        if not value:
            return value
        value = thunk()
    return value


def or_(*thunks):
    value = thunks[0]()
    for thunk in thunks[1:]:
        if value:
            return value
        value = thunk()
    return value


def if_exp(cond, true_fn, false_fn, where):
    assert linecache.getline(*where.rsplit(":", 1)[0:1], int(where.rsplit(":", 1)[1]))
    return true_fn() if cond else false_fn()


def range_bounds(*args):
    r = range(*args)
    return r.start, r.stop, r.step


RT.and_, RT.or_, RT.not_, RT.if_exp = and_, or_, (lambda v: not v), if_exp
RT.range_bounds, RT.range_step = range_bounds, (lambda b: b[2])
RT.in_range = lambda k, b: k < b[1] if b[2] > 0 else k > b[1]


def conv(fn):
    return convert(fn, runtime=RT)


def run(fn, *args, **kwargs):
    """(result, exception type) of a call."""
    try:
        return fn(*args, **kwargs), None
    except Exception as e:  # noqa: BLE001
        return None, type(e)


# ------------------------------------------------------------------------------------------------
# The corpus: (function, list of argument tuples, kinds of runtime calls it must make)
# ------------------------------------------------------------------------------------------------

CORPUS = []


def corpus(*argsets, expect=(), kwargs=None):
    def register(fn):
        CORPUS.append((fn, [a if isinstance(a, tuple) else (a,) for a in argsets], set(expect),
                       kwargs or {}))
        return fn
    return register


@corpus(0.1, 1.0, -2.5, 3.0, 0.0, expect={"while"})
def taylor_sin(x):
    term = x
    total = x
    n = 1
    while abs(term) > 1e-12:
        term = -term * x * x / ((2 * n) * (2 * n + 1))
        total = total + term
        n += 1
    return total


@corpus((1, 2), (-1, 2), (3, -4), (-5, -6), (0, 0), expect={"if"})
def nested_ifs(x, y):
    if x > 0:
        if y > 0:
            r = x + y
        else:
            r = x - y
    else:
        if y > 0:
            r = y - x
        else:
            r = -x - y
    return r * 2


@corpus(-3.0, 0.0, 2.0, expect={"if"})
def if_without_else(x):
    y = x * 2
    if y < 0:
        y = -y
    return y + 1


@corpus(-1.5, 0.0, 4.0, expect={"if"})
def defined_in_branches(x):
    if x > 0:
        a = x
        b = 2 * x
    else:
        b = -x
        a = 1.0
    return a * b


@corpus(-2.0, 0.5, 3.0, expect={"if"})
def defined_in_one_branch(x):
    if x > 0:
        z = x * 3
    if x > 1:
        return z
    return -1.0


@corpus(-3.0, 0.0, 7.0, expect={"if"})
def early_return(x):
    if x < 0:
        return -x
    y = x * 2
    return y + 1


@corpus(-5.0, -0.5, 0.0, 1.0, 5.0, 9.0, expect={"if"})
def early_return_chain(x):
    if x < -1:
        return 0.0
    if x < 0:
        return 1.0
    y = x + 1
    if y > 3:
        w = y * 2
        return w
    return y


@corpus(-1.0, 5.0, 20.0, expect={"if"})
def early_return_nested(x):
    if x > 0:
        if x > 10:
            return 1.0
        x = x * 2
        return x
    return 3.0


@corpus(-1.0, 1.0, expect={"if"})
def early_return_falls_off(x):
    """No final return: the function returns None on the fall-through path."""
    if x > 0:
        return x
    x = x * 2


@corpus(-2.0, 2.0, expect={"if"})
def early_return_raise(x):
    if x < 0:
        raise ValueError("negative")
    return math.sqrt(x)


@corpus(([1.0, 5.0, 3.0], 2.0), ([1.0, 0.5], 2.0), ([], 0.0))
def find_first(xs, threshold):
    for v in xs:
        if v > threshold:
            return v
    return None


@corpus(1, 6, 7, 27)
def collatz_steps(n):
    steps = 0
    while True:
        if n == 1:
            break
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


@corpus(1, 6, 7, expect={"if"})
def break_with_inner_if(n):
    steps = 0
    while True:
        if n % 2 == 0:
            n = n // 2
        else:
            n = 3 * n + 1
        steps += 1
        if n == 1 or steps > 100:
            break
    return steps


@corpus(0, 1, 5, expect={"for"})
def range_one(n):
    s = 0
    for i in range(n):
        s = s + i * i
    return s


@corpus((2, 7), (5, 5), (7, 2), expect={"for"})
def range_two(a, b):
    s = 1
    for k in range(a, b):
        s = s * 2 + k
    return s


@corpus(0, 1, 10, 11, expect={"for"})
def range_three_negative(n):
    acc = []
    total = 0.0
    for j in range(n, 0, -3):
        acc.append(j)
        total += j / 2
    return total, acc


@corpus(([1.0, 2.0, 3.0],), ([],), expect={"if"})
def for_over_list(xs):
    total = 0.0
    for x in xs:
        if x > 1.5:
            total += x
        else:
            total -= x
    return total


@corpus(0, 3, 5, expect={"for"})
def nested_loops(n):
    total = 0
    for i in range(n):
        for j in range(i):
            total += i * j
        k = 0
        while k < i:
            total += 1
            k += 2
    return total


def helper_abs(v):
    if v < 0:
        v = -v
    return v


def helper_clip(v, lo=0.0, hi=1.0):
    if v < lo:
        return lo
    if v > hi:
        return hi
    return v


@corpus(-2.0, 0.5, 3.0, expect={"if"})
def uses_helpers(x):
    return helper_abs(x) + helper_clip(x, hi=2.0) + helper_clip(x)


def make_poly(k, offset):
    def poly(x):
        if x > offset:
            y = k * x * x
        else:
            y = -k * x
        return y + offset
    return poly


corpus(-1.0, 0.0, 2.0, expect={"if"})(make_poly(3.0, 0.5))


@corpus(1.0, (1.0, 3.0), -2.0, expect={"if"}, kwargs={"shift": -1.0})
def defaults(x, scale=2.0, *, shift=1.0):
    if x * scale > shift:
        r = x * scale
    else:
        r = shift
    return r


@corpus(1.0, -1.0, expect={"if"}, kwargs={"bias": 0.5, "power": 2})
def with_kwargs(x, **kw):
    if kw.get("power", 1) == 2:
        x = x * x
    return x + kw.get("bias", 0.0)


@corpus(0, 1, 5, 10, expect={"if"})
def fact(n):
    if n <= 1:
        return 1
    return n * fact(n - 1)


@corpus(0, 1, 2, 10, expect={"if"})
def fib(n):
    if n < 2:
        return n
    else:
        return fib(n - 1) + fib(n - 2)


SCALE = 2.0


@corpus(1.0, -1.0, expect={"if"})
def uses_global(x):
    if x > 0:
        y = x * SCALE
    else:
        y = x / SCALE
    return y


@corpus(0, 3, expect={"for"})
def loop_target_after(n):
    i = -1
    for i in range(n):
        pass
    return i


@corpus(0, 4, expect={"for"})
def loop_target_reassigned(n):
    out = 0
    for i in range(n):
        i = i * 10
        out += i
    return out, i if n else None


@corpus(-10.0, -1.0, 0.0, 1.0, 10.0, expect={"if"})
def elif_chain(x):
    if x < -5:
        label = "very negative"
    elif x < 0:
        label = "negative"
    elif x == 0:
        label = "zero"
    else:
        label = "positive"
    return label


@corpus(-2.0, 3.0, expect={"if"})
def nested_def(x):
    def inner(y):
        if y > 0:
            return y * 10
        return y
    z = inner(x)
    if z > 5:
        z = inner(z - 100)
    return z


class Counter:
    def __init__(self):
        self.count = 0


@corpus(0, 3)
def attribute_in_loop(n):
    c = Counter()
    for i in range(n):
        c.count += i
    return c.count


@corpus(0, 4)
def subscript_in_loop(n):
    out = [0] * n
    for i in range(n):
        out[i] = i * i
    return out


@corpus(0, 7)
def continue_in_loop(n):
    total = 0
    for i in range(n):
        if i % 3 == 0:
            continue
        total += i
    return total


@corpus(([3, 1, 4, 1, 5],), ([],))
def walrus_while(xs):
    xs = list(xs)
    total = 0
    while (v := (xs.pop() if xs else None)) is not None:
        total += v
    return total


@corpus(-1.0, 0.0, 2.0, expect={"if"})
def try_in_if(x):
    if x >= 0:
        try:
            r = 1.0 / x
        except ZeroDivisionError:
            r = float("inf")
    else:
        r = x
    return r


@corpus(-1.0, 2.0, 5.0, expect={"if"})
def expressions_unchanged(x):
    f = lambda t: t * 2 if t > 0 else -t
    ys = [f(t) for t in range(3)]
    s = sum(v * x for v in ys)
    flag = x > 0 and s > 10 or x < -0.5
    if flag:
        s = s + 1
    return s, ys, flag


@corpus(0, 3, 10, expect={"while", "for"})
def loop_else(n):
    k = 0
    while k < n:  # the `else` clauses are what is tested
        k += 2
    else:  # noqa: PLW0120
        k = k + 100
    for i in range(n):
        k += 1
    else:  # noqa: PLW0120
        k *= 2
    return k


@corpus([1, 2, 3], [], expect={"if"})
def if_walrus(xs):
    if (m := len(xs)) > 2:
        m = m * 10
    return m


class Shape:
    def __init__(self, size):
        self.size = size
        self.__secret = 7

    def area(self, scale):
        if scale > 1:
            a = self.size * self.size * scale
        else:
            a = self.size * self.__secret
        return a

    def grow(self, n):
        total = 0
        for i in range(n):
            total += self.area(i)
        return total


class Square(Shape):
    def area(self, scale):
        if scale > 0:
            base = super().area(scale)
        else:
            base = 0
        return base + 1


SHAPE, SQUARE = Shape(3), Square(2)
corpus(0.5, 2.0, expect={"if"})(SHAPE.area)
corpus(0, 4, expect={"for"})(SHAPE.grow)
corpus(-1.0, 0.5, 2.0, expect={"if"})(SQUARE.area)
corpus(3, expect={"for"})(SQUARE.grow)
corpus((SHAPE, 0.5), (SQUARE, 3.0), expect={"if"})(Square.area)


@corpus(0, 5, expect={"for"})
def temporaries(n):
    s = 0.0
    for i in range(n):
        d = i - 2.5
        sq = d * d
        s = s + sq
    return s


@corpus(-1.0, 1.0, expect={"if"})
def tuple_swap(x):
    a, b = x, 2 * x
    if x > 0:
        a, b = b, a
    return a - b


@corpus(0, 4, 9, expect={"for", "while", "if"})
def while_in_for(n):
    total = 0
    for i in range(n):
        j = i
        while j > 0:
            if j % 2:
                total += j
            j -= 1
    return total


@corpus(0, 3, expect={"for"})
def empty_range_keeps_target(n):
    i = 42
    for i in range(0, n - 3):  # noqa: PIE808 (two arguments on purpose)
        pass
    return i


@corpus(-1.0, 1.0, expect={"if"})
def docstring_and_builtins(x):
    """A docstring stays first."""
    if isinstance(x, float) and x > 0:
        out = float(abs(x)) + len([1, 2])
    else:
        out = int(x)
    return out


@corpus(2, 5, expect={"for"})
def closure_in_loop(n):
    fs = []
    for i in range(n):
        fs.append(lambda i=i: i * i)
    return [f() for f in fs]


@corpus(-1.0, 3.0, expect={"if"})
def with_statement(x):
    import contextlib
    if x > 0:
        with contextlib.suppress(ZeroDivisionError):
            y = 1 / (x - 3)
            x = y
    return x


@corpus(3, 0, expect={"if"})
def match_statement(n):
    if n > 0:
        match n:
            case 1:
                r = "one"
            case _:
                r = "many"
    else:
        r = "none"
    return r


@corpus(-3.0, 2.0, expect={"if"})
def branch_defines_function(x):
    if x > 0:
        def g(t):
            return t + x
    else:
        def g(t):
            return t - x
    return g(10.0)


@corpus(1, 4, expect={"while", "if"})
def carried_across_iterations(n):
    k = 0
    acc = 0
    while k < n:
        if k == 0:
            t = 1
        else:
            t = t * 2
        acc += t
        k += 1
    return acc


@corpus(-1.0, 0.25, 4.0, expect={"if"})
def exception_in_branch(x):
    if x < 0:
        y = math.sqrt(x)
    else:
        y = math.log(x)
    return y


class Base:
    def value(self, x):
        return x + 1


class Private(Base):
    __factor = 3

    def value(self, x):
        if x > 0:
            y = super().value(x) * self.__factor
        else:
            y = self.__helper(x)
        return y

    def __helper(self, x):
        for i in range(2):
            x = x - i
        return x


PRIVATE = Private()
corpus(-2.0, 2.0, expect={"if"})(PRIVATE.value)


def make_recursive():
    def rec(n):
        if n <= 0:
            return 0
        return n + rec(n - 1)
    return rec


corpus(0, 4, expect={"if"})(make_recursive())


@corpus((1.0, 2.0), (1.0, 2.0, 3.0, 4.0), expect={"for"}, kwargs={"scale": 0.5})
def positional_only_and_varargs(a, /, b, *rest, scale=1.0, **options):
    total = a + b
    for k in range(len(rest)):
        total += rest[k] * scale
    return total, options


def make_class():
    class Local:
        def __init__(self, k):
            self.k = k

        def f(self, x):
            if x > self.k:
                x = x - self.k
            return x
    return Local(2.0)


corpus(1.0, 5.0, expect={"if"})(make_class().f)


def takes_f(f=0, g=1):
    if f > g:
        return f
    return g


@corpus(1, 5, expect={"if"})
def calls_with_keyword_f(x):
    return takes_f(f=x, g=3)


if True:  # a function defined in an indented block (not nested in a def or class)
    @corpus(-1.0, 1.0, expect={"if"})
    def in_a_block(x):
        if x < 0:
            x = -x
        return x


# ------------------------------------------------------------------------------------------------
# The corpus, converted and compared
# ------------------------------------------------------------------------------------------------


def _id(case):
    return getattr(case[0], "__qualname__", repr(case[0]))


@pytest.mark.parametrize("case", CORPUS, ids=[_id(c) for c in CORPUS])
def test_converted_computes_the_same(case):
    fn, argsets, expect, kwargs = case
    new = conv(fn)
    if expect:
        assert new is not fn, not_converted_reason(fn)
    kinds = set()
    for args in argsets:
        for kw in ({}, kwargs) if kwargs else ({},):
            RT.calls.clear()
            expected = run(fn, *args, **kw)
            got = run(new, *args, **kw)
            assert got == expected, (args, kw, converted_source(fn))
            kinds |= {c[0] for c in RT.calls}
    assert expect <= kinds, (expect, kinds)


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 50


def test_corpus_functions_with_convertible_statements_are_converted():
    for fn, _, expect, _ in CORPUS:
        if expect:
            assert converted_source(fn) is not None, fn


# ------------------------------------------------------------------------------------------------
# Rules
# ------------------------------------------------------------------------------------------------


def _line_of(fn, text):
    lines, start = __import__("inspect").getsourcelines(fn)
    for k, line in enumerate(lines):
        if line.strip().startswith(text):
            return start + k
    raise AssertionError(text)


def test_unconverted_statements_are_recorded_with_a_reason():
    # `break`, `continue` and `return` in loops are lowered to flags (jump_statements.py):
    conv(collatz_steps)
    assert (THIS_FILE, _line_of(collatz_steps, "while True")) not in UNCONVERTED
    conv(find_first)
    assert "range" in UNCONVERTED[(THIS_FILE, _line_of(find_first, "for v in xs"))]
    assert (THIS_FILE, _line_of(find_first, "if v > threshold")) not in UNCONVERTED
    conv(attribute_in_loop)
    reason = UNCONVERTED[(THIS_FILE, _line_of(attribute_in_loop, "for i in range"))]
    assert "attribute" in reason and "c.count" in reason
    conv(subscript_in_loop)
    assert "subscript" in UNCONVERTED[(THIS_FILE, _line_of(subscript_in_loop, "for i in"))]
    conv(continue_in_loop)
    assert (THIS_FILE, _line_of(continue_in_loop, "for i in")) not in UNCONVERTED
    conv(walrus_while)
    assert ":=" in UNCONVERTED[(THIS_FILE, _line_of(walrus_while, "while"))]


def test_self_contained_statements_inside_unconverted_loops_are_converted():
    src = converted_source(attribute_in_loop)
    assert "for i in range" in src  # the loop stays: it assigns an attribute
    src = converted_source(break_with_inner_if)
    assert "__jg.while_stmt" in src and "__jg_break_" in src  # its `break` is a flag now
    src = converted_source(for_over_list)
    assert "for x in xs" in src and "__jg.if_stmt" in src


def test_early_return_becomes_one_if_with_a_result_variable():
    src = converted_source(early_return_chain)
    returns = [n for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Return)]
    assert [ast.unparse(r) for r in returns if not isinstance(r.value, ast.Tuple)] == [
        f"return {RETURN_VALUE}"]  # the branches assign; one return after the `if`
    RT.calls.clear()
    conv(early_return_chain)(5.0)
    assert all(names == (RETURN_VALUE,) or "w" in names or "y" in names
               for _, names, _ in RT.calls)
    # A `return` inside a loop: a flag and a break, then one early-return `if` after the loop.
    src = converted_source(find_first)
    assert "__jg_return_" in src and "__jg_loopret_" in src


def test_carried_variables_exclude_temporaries():
    RT.calls.clear()
    conv(temporaries)(3)
    (kind, names, _), = {c for c in RT.calls}
    assert kind == "for" and names == ("s",)  # not d, sq, nor the loop index
    RT.calls.clear()
    conv(loop_target_after)(3)
    assert RT.calls[0][1] == ("i",)  # the index is read after the loop: carried
    RT.calls.clear()
    conv(carried_across_iterations)(3)
    ifs = {names for kind, names, _ in RT.calls if kind == "if"}
    assert ifs == {("t",)}  # t is read before it is assigned in the next iteration


def test_names_of_undefined_are_initialised():
    src = converted_source(defined_in_one_branch)
    assert "z = __jg.Undefined('z')" in src
    assert "x = __jg.Undefined" not in src  # parameters are never re-initialised


def test_converted_function_metadata():
    new = conv(defaults)
    assert new.__name__ == "defaults" and new.__qualname__ == defaults.__qualname__
    assert new.__wrapped__ is defaults and new.__module__ == defaults.__module__
    assert new.__defaults__ == (2.0,) and new.__kwdefaults__ == {"shift": 1.0}
    assert conv(docstring_and_builtins).__doc__ == "A docstring stays first."
    assert new.__code__.co_filename == THIS_FILE
    assert new.__code__.co_firstlineno == _line_of(defaults, "def defaults")


def test_globals_are_shared_and_live():
    global SCALE
    before = set(globals())
    new = conv(uses_global)
    assert set(globals()) == before  # nothing added to the module's namespace
    assert new.__globals__ is globals()
    try:
        SCALE = 10.0
        assert new(1.0) == 10.0 == uses_global(1.0)
    finally:
        SCALE = 2.0
    assert new(1.0) == 2.0


def test_closure_cells_are_shared():
    k = 2.0

    def scaled(x):
        if x > 0:
            y = k * x
        else:
            y = x
        return y

    new = conv(scaled)
    assert new(3.0) == 6.0
    k = 5.0
    assert new(3.0) == 15.0 == scaled(3.0)


def test_code_is_cached_and_functions_are_fresh():
    a, b = conv(taylor_sin), conv(taylor_sin)
    assert a is not b and a.__code__ is b.__code__
    assert conv(a) is a  # converting a converted function returns it
    f1, f2 = make_poly(1.0, 0.0), make_poly(2.0, 1.0)
    assert conv(f1).__code__ is conv(f2).__code__  # one conversion per code object
    assert conv(f1)(2.0) == f1(2.0) and conv(f2)(2.0) == f2(2.0)


def test_cache_is_weak():
    src = "def tmp_fn(x):\n    if x > 0:\n        x = -x\n    return x\n"
    filename = "<jitgrad-test-weak-cache>"
    linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
    try:
        ns = {}
        exec(compile(src, filename, "exec"), ns)  # noqa: S102
        fn = ns.pop("tmp_fn")
        new = conv(fn)
        assert new is not fn and new(3.0) == -3.0
        n = len(convert_module._CACHE)
        del fn, new
        gc.collect()
        assert len(convert_module._CACHE) < n
    finally:
        del linecache.cache[filename]


def test_bound_methods_stay_bound():
    m = conv(SHAPE.area)
    assert isinstance(m, types.MethodType) and m.__self__ is SHAPE
    assert m(2.0) == SHAPE.area(2.0)


def test_private_names_are_mangled_as_in_the_class():
    assert conv(SHAPE.area)(0.5) == 21  # reads self._Shape__secret


def test_super_works_inside_branches():
    assert "super(__class__, self)" in converted_source(Square.area)
    assert conv(SQUARE.area)(2.0) == SQUARE.area(2.0) == 9.0


def test_calls_are_wrapped_but_not_builtins():
    src = converted_source(docstring_and_builtins)
    assert "converted_call" not in src
    src = converted_source(uses_helpers)
    assert "__jg.converted_call(helper_abs, x)" in src
    assert "__jg.converted_call(helper_clip, x, hi=2.0)" in src


def test_helpers_are_converted_through_converted_call():
    RT.calls.clear()
    conv(uses_helpers)(-2.0)
    lines = {int(w.rpartition(":")[2]) for _, _, w in RT.calls}
    assert _line_of(helper_abs, "if v < 0") in lines


# ------------------------------------------------------------------------------------------------
# Tracebacks
# ------------------------------------------------------------------------------------------------


def raises_in_loop(n):
    total = 0
    k = 0
    while k < n:
        if k == 2:
            raise RuntimeError("boom")
        total += k
        k += 1
    return total


def test_tracebacks_point_at_the_original_lines():
    new = conv(raises_in_loop)
    with pytest.raises(RuntimeError) as info:
        new(5)
    frames = traceback.extract_tb(info.value.__traceback__)
    last = frames[-1]
    assert last.filename == THIS_FILE
    assert last.lineno == _line_of(raises_in_loop, 'raise RuntimeError("boom")')
    assert last.line == 'raise RuntimeError("boom")'
    user = [f for f in frames if f.name == "raises_in_loop"]
    assert user and user[0].lineno == _line_of(raises_in_loop, "while k < n")
    # An exception in a condition points at the condition's line.
    with pytest.raises(TypeError) as info:
        new(None)
    last = traceback.extract_tb(info.value.__traceback__)[-1]
    assert last.filename == THIS_FILE and last.lineno == _line_of(raises_in_loop, "while k < n")


def test_exception_types_are_preserved():
    new = conv(exception_in_branch)
    with pytest.raises(ValueError):
        new(-1.0)
    with pytest.raises(ValueError):
        conv(early_return_raise)(-1.0)


# ------------------------------------------------------------------------------------------------
# What is returned unchanged
# ------------------------------------------------------------------------------------------------


def gen(n):
    for i in range(n):  # noqa: UP028
        yield i


def uses_global_statement(x):
    global SCALE
    if x:
        SCALE = x
    return SCALE


def uses_nonlocal():
    v = 0

    def bump():
        nonlocal v
        if v < 3:
            v += 1
        return v
    return bump


def straight_line(x):
    return x * 2 + 1


def only_builtin_calls(x):
    return abs(x) + len(str(x))


def calls_locals(x):
    if x:
        y = 1
    return locals()


async def coroutine(x):
    if x:
        return 1
    return 2


def test_conversion_failures_do_not_raise(monkeypatch):
    def broken(fn):
        raise RuntimeError("bug")

    def victim(x):
        if x:
            x = 1
        return x

    monkeypatch.setattr(convert_module, "_analyse", broken)
    assert conv(victim) is victim
    assert "conversion failed" in not_converted_reason(victim)


def test_tab_indented_and_linecache_sources():
    src = "class T:\n\tdef m(self, x):\n\t\tif x > 0:\n\t\t\tx = 2 * x\n\t\treturn x\n"
    filename = "<jitgrad-test-tabs>"
    linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
    try:
        ns = {"__name__": "tabs"}
        exec(compile(src, filename, "exec"), ns)  # noqa: S102
        m = ns["T"]().m
        new = conv(m)
        assert new is not m and new(3) == 6 and new(-1) == -1
        assert RT.calls[-1][2] == f"{filename}:3"
    finally:
        del linecache.cache[filename]


def test_unconvertible_functions_are_returned_unchanged():
    src = "def no_source(x):\n    if x > 0:\n        x = -x\n    return x\n"
    ns = {}
    exec(src, ns)  # noqa: S102
    cases = [len, abs, functools.partial(helper_abs, 1.0), lambda x: x, gen,
             uses_global_statement, uses_nonlocal(), straight_line, only_builtin_calls,
             calls_locals, coroutine, ns["no_source"], math.sqrt, Shape, SHAPE,
             functools.reduce, pytest.raises, sys.exit]
    for fn in cases:
        assert conv(fn) is fn, fn
    assert "source" in not_converted_reason(ns["no_source"])
    assert "nothing to convert" in not_converted_reason(lambda x: x)
    assert "generator" in not_converted_reason(gen)
    assert "global" in not_converted_reason(uses_global_statement)
    assert "nothing to convert" in not_converted_reason(straight_line)
    assert not_converted_reason(taylor_sin) is None
    assert ns["no_source"](2.0) == -2.0


def test_jitgrad_and_numpy_functions_are_not_converted():
    numpy = pytest.importorskip("numpy")
    import jitgrad.numpy as jnp
    for fn in (numpy.linalg.norm, numpy.clip, jnp.where, jnp.mean, convert):
        assert conv(fn) is fn
    # jitgrad's wrappers take the user's __module__ (functools.wraps); their code is jitgrad's,
    # and reading its source would parse a whole jitgrad file (25 ms) for nothing.
    import jitgrad

    def user(x):
        return x * x if x > 0 else -x

    wrapped = jitgrad.grad(user)
    assert wrapped.__module__ == user.__module__
    assert conv(wrapped) is wrapped and "jitgrad" in not_converted_reason(wrapped)
    assert conv(user) is not user


def test_reserved_names_are_refused():
    def uses_reserved(x):
        __jg_mine = x
        if __jg_mine:
            x = 1
        return x
    assert conv(uses_reserved) is uses_reserved


def test_with_the_real_runtime_on_plain_values():
    control = pytest.importorskip("jitgrad.control")
    for name in ("Undefined", "if_stmt", "while_stmt", "for_range_stmt", "converted_call"):
        if not hasattr(control, name):
            pytest.skip("jitgrad.control does not implement the runtime yet")
    for fn, x in ((taylor_sin, 0.7), (early_return_chain, 5.0), (range_three_negative, 10),
                  (uses_helpers, -2.0), (nested_loops, 4)):
        assert convert(fn)(x) == fn(x)
