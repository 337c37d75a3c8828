"""docs/numpy.md lists exactly what the registry holds (it is made from it)."""

import os

from jitgrad import _supported

DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs",
                   "numpy.md")


def test_docs_numpy_md_is_made_from_the_registry():
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    assert text == _supported.markdown(), (
        "docs/numpy.md is out of date: run `python -m jitgrad._supported > docs/numpy.md`")


def test_every_listed_function_is_an_attribute_of_its_module():
    import importlib

    from jitgrad.ops import REGISTRY

    _supported.markdown()  # imports every module
    for module, table in REGISTRY.items():
        mod = importlib.import_module(f"jitgrad.{module}")
        for name, fn in table.items():
            assert getattr(mod, name) is fn, f"jitgrad.{module}.{name}"
