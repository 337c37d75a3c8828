"""`jitgrad.misc`: autograd's helpers, with its names and signatures (`autograd.misc`)."""

from .flatten import flatten, flatten_func  # noqa: F401
