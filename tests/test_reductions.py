"""jitgrad.numpy's reductions and scans beyond sum/max/min/mean (jitgrad/numpy/_reductions.py):
values and gradients over shapes, axes (None, int, negative, tuple), keepdims, ddof and dtypes,
against NumPy and central differences; prod and cumprod at zeros; integer and boolean results
with zero gradients; second order; errors.

Tests run under `jitgrad.execution("interpret")`, except those named `test_compiled_*`, which
compile every op (kernel) and compare with the interpreter.  Ids read `prod-2x3x4-axis0_2-keep`
(select with -k)."""

from __future__ import annotations

import zlib

import numpy
import pytest

import jitgrad
import jitgrad.numpy as np

try:  # works whether or not tests/ becomes a package
    from .gradcheck import check_against_autograd, check_grads, check_second_order
except ImportError:
    from gradcheck import check_against_autograd, check_grads, check_second_order


@pytest.fixture(autouse=True)
def _mode(request):
    if request.node.name.startswith("test_compiled"):
        yield
    else:
        with jitgrad.execution("interpret"):
            yield


def sid(shape) -> str:
    return "0d" if shape == () else "x".join(map(str, shape))


def aid(axis) -> str:
    if axis is None:
        return "none"
    if isinstance(axis, tuple):
        return "axis" + "_".join(str(a).replace("-", "m") for a in axis)
    return f"axis{axis}".replace("-", "m")


def rand(shape, *key, lo=0.5, hi=1.5, signed=True):
    rng = numpy.random.default_rng(zlib.crc32(repr((shape,) + key).encode()))
    x = rng.uniform(lo, hi, shape)
    if signed:
        x = x * rng.choice([-1.0, 1.0], shape)
    return numpy.array(x)


def weights(shape, *key):
    return rand(shape, "w", *key)


def weighted(fn, x, key=()):
    w = weights(numpy.shape(fn(x)), *key)
    return lambda x: np.sum(fn(x) * w)


# name, function of (x, axis, keepdims)
REDUCTIONS = [
    ("prod", lambda x, axis, kd: np.prod(x, axis=axis, keepdims=kd)),
    ("var", lambda x, axis, kd: np.var(x, axis=axis, keepdims=kd)),
    ("var-ddof1", lambda x, axis, kd: np.var(x, axis=axis, ddof=1, keepdims=kd)),
    ("std", lambda x, axis, kd: np.std(x, axis=axis, keepdims=kd)),
    ("std-ddof1", lambda x, axis, kd: np.std(x, axis=axis, ddof=1, keepdims=kd)),
    ("mean-dtype", lambda x, axis, kd: np.mean(x, axis=axis, dtype=numpy.float64, keepdims=kd)),
    ("average", lambda x, axis, kd: np.average(x, axis=axis, keepdims=kd)),
    ("nansum", lambda x, axis, kd: np.nansum(x, axis=axis, keepdims=kd)),
    ("nanmean", lambda x, axis, kd: np.nanmean(x, axis=axis, keepdims=kd)),
    ("ptp", lambda x, axis, kd: np.ptp(x, axis=axis, keepdims=kd)),
]
LAYOUTS = [((), None), ((5,), None), ((5,), -1), ((3, 4), 0), ((3, 4), 1), ((1, 4), 0),
           ((2, 3, 4), (0, 2)), ((2, 3, 4), -2), ((2, 3, 4), None)]


@pytest.mark.parametrize("name,fn,shape,axis,keepdims", [
    pytest.param(name, fn, shape, axis, kd,
                 id=f"{name}-{sid(shape)}-{aid(axis)}{'-keep' if kd else ''}")
    for name, fn in REDUCTIONS for shape, axis in LAYOUTS for kd in (False, True)
    if not (shape == () and axis is not None)
])
def test_reduction(name, fn, shape, axis, keepdims):
    x = rand(shape, name)
    f = lambda x: fn(x, axis, keepdims)  # noqa: E731
    with numpy.errstate(all="ignore"):
        expected = getattr(numpy, name.split("-")[0])(x, axis=axis, keepdims=keepdims,
                                                      **({"ddof": 1} if "ddof" in name else {}))
        got = f(x)
        numpy.testing.assert_allclose(got, expected, rtol=1e-13)
        count = numpy.size(x) // max(numpy.size(expected), 1)
        if name.startswith("ptp"):
            x = rand(shape, name, "distinct") + numpy.arange(numpy.size(x)).reshape(shape) * 0.1
        if "ddof1" in name and count <= 1:
            return  # 0 / 0: nan, as NumPy
        check_grads(weighted(f, x, key=(name,)), x)


SCANS = [("cumsum", np.cumsum, numpy.cumsum), ("cumprod", np.cumprod, numpy.cumprod)]


@pytest.mark.parametrize("name,fn,ref,shape,axis", [
    pytest.param(name, fn, ref, shape, axis, id=f"{name}-{sid(shape)}-{aid(axis)}")
    for name, fn, ref in SCANS
    for shape, axis in [((), None), ((5,), None), ((5,), 0), ((3, 4), 0), ((3, 4), -1),
                        ((2, 3, 4), 1), ((2, 3, 4), None)]
])
def test_scan(name, fn, ref, shape, axis):
    x = rand(shape, name)
    numpy.testing.assert_allclose(fn(x, axis=axis), ref(x, axis=axis), rtol=1e-13)
    check_grads(weighted(lambda x: fn(x, axis=axis), x, key=(name,)), x)
    m = weighted(lambda x: getattr(x, name)(axis), x, key=(name, "method"))
    check_grads(m, x)


def test_prod_and_cumprod_at_zeros():
    # The gradient is the product of the other elements (autograd's g * ans / x is nan here).
    x = numpy.array([[2.0, 0.0, 3.0, -1.5], [0.0, 0.0, 2.0, 1.0], [1.0, 2.0, 3.0, 0.5]])
    for axis in (None, 0, 1):
        check_grads(weighted(lambda x: np.prod(x, axis=axis), x, key=("zeros", axis)), x)
        check_grads(weighted(lambda x: np.cumprod(x, axis=axis), x, key=("czeros", axis)), x)
    g = jitgrad.grad(lambda x: np.prod(x))(numpy.array([2.0, 0.0, 3.0]))
    numpy.testing.assert_array_equal(g, [0.0, 6.0, 0.0])


@pytest.mark.parametrize("x", [
    pytest.param(numpy.array([1.3, -0.7, 2.0, 0.9]), id="nonzero"),
    pytest.param(numpy.array([1.3, 0.0, 2.0, 0.9]), id="one-zero"),
    pytest.param(numpy.array([0.0, 1.1, 0.0, -0.9]), id="two-zeros"),
])
def test_prod_second_order(x):
    check_second_order(lambda x: np.prod(x) + np.sum(np.prod(x[None, :] * x[:, None], 1)), x)


def test_second_order_statistics():
    x = rand((3, 4), "second")
    w = weights((4,), "second")
    check_second_order(lambda x: np.sum(np.std(x, axis=0) * w) + np.var(x, ddof=1), x)
    check_second_order(lambda x: np.sum(np.cumsum(x, axis=1) ** 2 * w), x)


def test_against_autograd():
    pytest.importorskip("autograd")
    x = rand((3, 4), "autograd")
    cases = {
        "prod": lambda np, x: np.sum(np.prod(x, axis=1) * numpy.arange(3.0)),
        "var": lambda np, x: np.sum(np.var(x, axis=0, ddof=1) * numpy.arange(4.0)),
        "std": lambda np, x: np.std(x) + np.sum(np.std(x, axis=1, keepdims=True)),
        "std-one": lambda np, x: np.sum(np.std(x[:1], axis=0)),
        "cumsum": lambda np, x: np.sum(np.cumsum(x, axis=1) * x) + np.sum(np.cumsum(x) ** 2),
        "max-ties": lambda np, x: np.sum(np.max(np.round(x), axis=0)),
    }
    for name, case in cases.items():
        check_against_autograd(lambda np: lambda x: case(np, x), x)


def test_average_weights_and_returned():
    x = rand((3, 4), "avg")
    w1, w2 = rand((4,), "w1", signed=False), rand((3, 4), "w2", signed=False)
    for kwargs in ({"axis": 1, "weights": w1}, {"axis": -1, "weights": w1},
                   {"axis": None, "weights": w2}, {"axis": 0, "weights": w2, "keepdims": True}):
        numpy.testing.assert_allclose(np.average(x, **kwargs), numpy.average(x, **kwargs))
        check_grads(weighted(lambda x: np.average(x, **kwargs), x, key=(str(kwargs),)), x)
        got = jitgrad.value_and_grad(lambda x: np.sum(np.average(x, returned=True, **kwargs)[1]))
        assert got(x)[0] == pytest.approx(numpy.sum(numpy.average(x, returned=True, **kwargs)[1]))
    # Traced weights.
    check_grads(lambda w: np.sum(np.average(x, axis=1, weights=w) * numpy.arange(3.0)), w1)
    avg, scl = np.average(x, axis=0, returned=True)
    numpy.testing.assert_array_equal(scl, numpy.average(x, axis=0, returned=True)[1])


def test_nan_functions_ignore_nans():
    x = rand((3, 4), "nan")
    mask = numpy.zeros((3, 4), bool)
    mask[0, 1] = mask[2, 2] = mask[2, 3] = True
    w = weights((4,), "nan")

    def f(x):
        y = np.where(mask, numpy.nan, x)
        return np.sum(np.nansum(y, axis=0) * w) + np.sum(np.nanmean(y, axis=1)) + np.nansum(y)

    value, g = jitgrad.value_and_grad(f)(x)
    y = numpy.where(mask, numpy.nan, x)
    assert value == pytest.approx(numpy.sum(numpy.nansum(y, axis=0) * w)
                                  + numpy.sum(numpy.nanmean(y, axis=1)) + numpy.nansum(y))
    assert numpy.all(g[mask] == 0.0)
    check_grads(f, x)


# ------------------------------------------------------------------------------------------------
# Integer and boolean results: NumPy's values, zero gradients
# ------------------------------------------------------------------------------------------------

DISCRETE = {
    "argmax": lambda x, axis, kd: np.argmax(x, axis=axis, keepdims=kd),
    "argmin": lambda x, axis, kd: np.argmin(x, axis=axis, keepdims=kd),
    "all": lambda x, axis, kd: np.all(x > -0.8, axis=axis, keepdims=kd),
    "any": lambda x, axis, kd: np.any(x > 1.2, axis=axis, keepdims=kd),
    "count_nonzero": lambda x, axis, kd: np.count_nonzero(x > 0, axis=axis, keepdims=kd),
}


@pytest.mark.parametrize("name,axis,keepdims", [
    pytest.param(name, axis, kd, id=f"{name}-{aid(axis)}{'-keep' if kd else ''}")
    for name in sorted(DISCRETE) for axis in (None, 0, -1, (0, 2)) for kd in (False, True)
    if not (name.startswith("arg") and isinstance(axis, tuple))
])
def test_discrete(name, axis, keepdims):
    x = rand((3, 4, 2), name)
    fn = DISCRETE[name]
    expected = fn(x, axis, keepdims)
    seen = {}
    w = weights(numpy.shape(expected), name)

    def f(x):
        out = fn(x, axis, keepdims)
        seen["out"] = (out.shape, out.dtype)
        return np.sum(x) + np.sum(np.where(out, 2.0, 0.5) * w if name in ("all", "any")
                                  else out * w)

    value, g = jitgrad.value_and_grad(f)(x)
    assert seen["out"] == (numpy.shape(expected), numpy.asarray(expected).dtype)
    term = numpy.where(expected, 2.0, 0.5) * w if name in ("all", "any") else expected * w
    assert value == pytest.approx(numpy.sum(x) + numpy.sum(term), rel=1e-13)
    numpy.testing.assert_array_equal(g, numpy.ones_like(x))  # nothing through the result


def test_argmax_nan_and_ties():
    x = numpy.array([[1.0, 3.0, 3.0, 0.0], [numpy.nan, 5.0, numpy.nan, 1.0],
                     [2.0, 2.0, 2.0, 2.0]])
    for fn, ref in ((np.argmax, numpy.argmax), (np.argmin, numpy.argmin)):
        got = jitgrad.make_vjp(lambda t: fn(t + x, axis=1))(numpy.zeros((3, 4)))[1]
        numpy.testing.assert_array_equal(got, ref(x, axis=1))


# ------------------------------------------------------------------------------------------------
# Compiled: every kernel, dtypes, against the interpreter
# ------------------------------------------------------------------------------------------------


def test_compiled_gradients():
    x = rand((3, 4), "compiled")
    x[1, 2] = 0.0
    ws = [weights(s, "compiled", k) for k, s in enumerate(
        [(3,), (4,), (3, 4), (3, 4), (1, 4), (), (3,), ()])]

    def f(x):
        terms = [np.prod(x, axis=1), np.var(x, axis=0, ddof=1), np.cumsum(x, axis=0),
                 np.cumprod(x, axis=1), np.std(x, axis=0, keepdims=True), np.prod(x),
                 np.average(x, axis=1, weights=ws[1]), np.ptp(x)]
        total = np.sum(x * np.argmax(x, axis=0)) + np.sum(x[0] * np.argmin(x, axis=0))
        total = total + np.sum(np.where(np.all(x > -2, axis=0), x[1], 0.0))
        return total + sum(np.sum(t * w) for t, w in zip(terms, ws))

    got = jitgrad.value_and_grad(f)(x)
    with jitgrad.execution("interpret"):
        expected = jitgrad.value_and_grad(f)(x)
    assert got[0] == pytest.approx(expected[0], rel=1e-13)
    numpy.testing.assert_allclose(got[1], expected[1], rtol=1e-12, atol=1e-14)


def test_compiled_second_order():
    x = numpy.array([1.3, 0.0, 2.0, -0.9])
    f = lambda x: np.prod(x) + np.sum(np.cumsum(x) ** 3)  # noqa: E731
    h = jitgrad.hessian(f)(x)
    with jitgrad.execution("interpret"):
        expected = jitgrad.hessian(f)(x)
    numpy.testing.assert_allclose(h, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", ["float32", "int32", "bool"])
def test_compiled_result_dtypes(dtype):
    base = numpy.array([[1.5, -2.0, 0.0], [3.0, 1.0, -1.0]])
    x = base.astype(dtype)
    cases = [lambda v: np.prod(v, axis=1), lambda v: np.cumsum(v, axis=0),
             lambda v: np.cumprod(v), lambda v: np.argmax(v, axis=1), lambda v: np.all(v),
             lambda v: np.any(v, axis=0), lambda v: np.count_nonzero(v, axis=1)]
    if dtype != "bool":
        cases += [lambda v: np.var(v, axis=0), lambda v: np.std(v), lambda v: np.ptp(v, axis=1),
                  lambda v: np.average(v, axis=0), lambda v: np.nansum(v, axis=1),
                  lambda v: np.nanmean(v), lambda v: np.mean(v, dtype=numpy.float64)]
    for k, case in enumerate(cases):
        ref = numpy.asarray(case(x))
        for mode in ("compiled", "interpret"):
            def traced(t):
                out = case((t * 0).astype(x.dtype) + x)
                assert out.dtype == ref.dtype, (k, mode, out.dtype, ref.dtype)
                return out

            if mode == "interpret":
                with jitgrad.execution("interpret"):
                    ans = jitgrad.make_vjp(traced)(numpy.zeros(x.shape))[1]
            else:
                ans = jitgrad.make_vjp(traced)(numpy.zeros(x.shape))[1]
            ans = numpy.asarray(ans)
            if ref.ndim:  # (a 0-d result comes back as a Python number)
                assert ans.dtype == ref.dtype, (k, mode, ans.dtype, ref.dtype)
            numpy.testing.assert_allclose(ans, ref, rtol=1e-6, err_msg=f"case {k} {mode}")


# ------------------------------------------------------------------------------------------------
# Plain arrays and errors
# ------------------------------------------------------------------------------------------------


def test_plain_arrays():
    x = rand((3, 4), "plain")
    for name in ["prod", "var", "std", "average", "nansum", "nanmean", "ptp", "cumsum",
                 "cumprod", "argmax", "argmin", "all", "any", "count_nonzero", "mean"]:
        numpy.testing.assert_array_equal(getattr(np, name)(x, axis=0),
                                         getattr(numpy, name)(x, axis=0), err_msg=name)


def test_errors():
    x = numpy.ones((2, 3))
    with pytest.raises(jitgrad.ShapeError, match=r"np\.prod: axis 2 is out of bounds"):
        jitgrad.grad(lambda x: np.sum(np.prod(x, axis=2)))(x)
    with pytest.raises(jitgrad.ShapeError, match=r"np\.cumsum: axis"):
        jitgrad.grad(lambda x: np.sum(np.cumsum(x, axis=-3)))(x)
    with pytest.raises(jitgrad.TracingError, match=r"np\.argmax: axis must be an int"):
        jitgrad.grad(lambda x: np.sum(x * np.argmax(x, axis=(0, 1))))(x)
    with pytest.raises(jitgrad.ShapeError, match=r"np\.average: weights of shape"):
        jitgrad.grad(lambda x: np.sum(np.average(x, axis=0, weights=numpy.ones(3))))(x)
    with pytest.raises(jitgrad.TracingError, match=r"np\.cumprod's gradient"):
        jitgrad.hessian(lambda x: np.sum(np.cumprod(x)))(numpy.ones(3))
    with pytest.raises(jitgrad.TracingError, match=r"np\.var: arguments \['where'\]"):
        jitgrad.grad(lambda x: np.var(x, where=x > 0))(x)
