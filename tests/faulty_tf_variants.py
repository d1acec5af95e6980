"""The faulty variants of tests/faulty_variants.py, in a module that imports TensorFlow, so the
harness starts them warm (forked from the process that imported TensorFlow once): the same
failures must be recorded the same way as for a fresh interpreter."""

from __future__ import annotations

import tensorflow as tf  # noqa: F401  (what makes the harness start these warm)

from tests import faulty_variants


class Crash(faulty_variants.Crash):
    pass


class Killed(faulty_variants.Killed):
    pass


class Segfault(faulty_variants.Segfault):
    pass


class Hang(faulty_variants.Hang):
    pass


class Diverge(faulty_variants.Diverge):
    pass
