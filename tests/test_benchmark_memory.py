"""The measuring function of benchmarks/memory.py, on calls whose peak memory is known.

Each check runs in a fresh interpreter (as the benchmark's children do): the peak resident set
size is per process, and pytest's own heap must not blur it.  Needs only NumPy; skips where
/proc/self/clear_refs cannot reset the peak (not Linux, Linux < 4.0, a locked-down /proc)."""

import json
import os
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = """
import json
from benchmarks import memory
print(json.dumps(memory.run_controls(["no-op", "numpy.ones(10**7)"], repeats=3, policy={policy!r})))
"""


def _controls(policy):
    if not os.path.exists("/proc/self/status"):
        pytest.skip("no /proc/self/status: the peak-memory method needs Linux")
    proc = subprocess.run([sys.executable, "-c", CHILD.format(policy=policy)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["status"] == "unsupported":
        pytest.skip(f"peak memory cannot be measured here: {result['reason']}")
    assert result["status"] == "ok", result
    return result["controls"]


@pytest.mark.parametrize("policy", ["fixed", "glibc"])
def test_controls_measure_what_they_allocate(policy):
    controls = _controls(policy)
    ones = [b / 1e6 for b in controls["numpy.ones(10**7)"]["trimmed"]]
    noop = [b / 1e6 for b in controls["no-op"]["trimmed"]]
    assert all(70 <= mb <= 100 for mb in ones), ones  # 80 MB of float64 ones
    assert all(mb < 5 for mb in noop), noop
    assert all(b / 1e6 < 5 for b in controls["no-op"]["retained"])
    if policy == "glibc":  # in a loop too: the 80 MB block is mapped afresh at every call
        assert all(70 <= b / 1e6 <= 100 for b in controls["numpy.ones(10**7)"]["steady"])


KERNEL = '''
# def f(x0:f64[N0,N1], x1:f64[N1]):
#   x6:f64[N0,N1] = matmul x4 x0
@numba.njit(cache=True)
def kernel(x0, x1, lifted):
    N0, N1, = lifted
    x6 = runtime.matmul(x4, x0)  # x6:f64[N0,N1] = matmul x4 x0
    x8 = np.empty((N0, N1,), np.float64)
    nc0 = min(N0, 32)
    part9 = np.full((nc0,), 0.0, np.float64)
    x3 = np.ascontiguousarray(x0).reshape((N0, 1,))
    x35 = np.empty((N0, 1,), np.int64)
    x41 = x1.T
    return (x8,)
'''


def test_kernel_allocations_are_read_from_the_source():
    from benchmarks import memory

    allocs = memory.kernel_allocations(KERNEL, {"N0": 256, "N1": 128})
    assert [(name, shape, nbytes) for name, shape, nbytes, _ in allocs] == [
        ("x6", (256, 128), 256 * 128 * 8),
        ("x8", (256, 128), 256 * 128 * 8),
        ("part9", (32,), 32 * 8),
        ("x35", (256, 1), 256 * 8),
    ]
