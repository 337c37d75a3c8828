"""The native runtime's process settings (jitgrad/runtime.py)."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROBE = """
import jitgrad, numpy
from jitgrad import runtime
with jitgrad.execution("compile"):
    jitgrad.grad(lambda x: jitgrad.numpy.sum(x * x))(numpy.ones(3))
print(runtime.tune_malloc())
"""


def _probe(**env):
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("MALLOC_") and k != "JITGRAD_MALLOC_TUNE"}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env={**clean, **env},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()[-1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_malloc_thresholds_are_set_unless_the_user_set_their_own():
    import ctypes

    try:
        ctypes.CDLL(None).gnu_get_libc_version
    except AttributeError:
        pytest.skip("not glibc")
    assert _probe() == "True"
    assert _probe(JITGRAD_MALLOC_TUNE="0") == "False"
    assert _probe(MALLOC_ARENA_MAX="2") == "False"  # the user's own malloc settings win
