"""Kernels on disk: a new process loads the compiled kernel instead of compiling it again."""

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import time
    import numpy
    import jitgrad, jitgrad.numpy as np

    def loss(x):
        return np.sum(np.tanh(x) ** 2 + np.exp(-x))

    t = time.perf_counter()
    v, g = jitgrad.value_and_grad(loss)(numpy.linspace(-1, 1, 50))
    elapsed = time.perf_counter() - t
    kernel = jitgrad.value_and_grad(loss)._jitgrad._fast[(50,)].kernel
    print(v, g.sum(), elapsed, kernel.stats.cache_hits.total(), kernel.stats.cache_misses.total())
""")


def run(cache_dir):
    env = dict(os.environ, JITGRAD_CACHE_DIR=str(cache_dir))
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    value, gsum, elapsed, hits, misses = out
    return float(value), float(gsum), float(elapsed), int(hits), int(misses)


def test_second_process_loads_the_kernel_from_disk(tmp_path):
    cold = run(tmp_path)
    warm = run(tmp_path)
    assert cold[3:] == (0, 1)  # compiled
    assert warm[3:] == (1, 0)  # loaded from Numba's on-disk cache
    assert warm[:2] == cold[:2]
    kernels = [f for f in os.listdir(tmp_path) if f.startswith("k_") and f.endswith(".py")]
    assert len(kernels) == 1
