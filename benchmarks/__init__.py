"""jitgrad's benchmarks.  They time compiled kernels, so a new signature compiles at its first
call (JITGRAD_EXECUTION=compile) unless the environment says otherwise; the examples harness
(autograd_examples.py) runs the examples as users run them, with the default tiers."""

import os

# Whether the execution mode is this package's default rather than the caller's choice.
EXECUTION_DEFAULTED = "JITGRAD_EXECUTION" not in os.environ
os.environ.setdefault("JITGRAD_EXECUTION", "compile")
