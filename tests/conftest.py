import atexit
import collections
import os
import shutil
import tempfile

import numpy
import pytest

# The tests never touch the user's kernel cache (~/.cache/jitgrad): they use a private directory,
# made fresh for the run and deleted after it, or $JITGRAD_TEST_CACHE_DIR when that is set (a
# persistent one, to keep a development loop's kernels warm).  Set before jitgrad is imported.
if os.environ.get("JITGRAD_TEST_CACHE_DIR"):
    os.environ["JITGRAD_CACHE_DIR"] = os.environ["JITGRAD_TEST_CACHE_DIR"]
else:
    _private = tempfile.mkdtemp(prefix="jitgrad-tests-")
    os.environ["JITGRAD_CACHE_DIR"] = _private
    atexit.register(shutil.rmtree, _private, ignore_errors=True)

# The tests compile a new signature's kernel at its first call, so that a test of the compiled
# tier tests Numba's kernel (users' default, "auto", interprets first: tests/test_tiers.py).
os.environ.setdefault("JITGRAD_EXECUTION", "compile")
# Tests of the interpreted tier switch to the compiled one in this process; those of kernels
# compiled by a worker process (tests/test_compile_worker.py) turn workers on.
os.environ.setdefault("JITGRAD_COMPILE_WORKER", "0")

from jitgrad import api  # noqa: E402


@pytest.fixture
def rng():
    return numpy.random.default_rng(0)


@pytest.fixture
def loads(monkeypatch):
    """The kernels loaded (compiled or read from the disk cache) during the test."""
    seen = []
    from jitgrad import compile as jg_compile

    real = jg_compile.load
    monkeypatch.setattr(jg_compile, "load", lambda source: seen.append(source) or real(source))
    return seen


@pytest.fixture
def builds(monkeypatch):
    """Counts how often a signature is traced and compiled."""
    count = collections.Counter()
    original = api._GradFunction._build

    def counting(self, *a, **k):
        count[self.name] += 1
        return original(self, *a, **k)

    monkeypatch.setattr(api._GradFunction, "_build", counting)
    return count


@pytest.fixture
def interpret_unless_compiled(request):
    """Runs a test with the IR interpreter, unless its name starts with test_compiled: a test
    file takes it with `pytestmark = pytest.mark.usefixtures("interpret_unless_compiled")`, so
    most variants skip Numba's compile time and a compiled sample keeps the kernels honest."""
    if request.node.name.startswith("test_compiled"):
        yield
        return
    import jitgrad

    with jitgrad.execution("interpret"):
        yield
