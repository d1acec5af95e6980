"""What the warm-start server imports once before it forks workers: the frameworks, timed.

Importing creates no TensorFlow runtime state (no eager context, graph, session, device or
thread pool: those appear on first use), so every forked worker still starts TensorFlow
afresh. The time measured here is added to every warm run's import and first-step seconds,
so they read as from a cold start.
"""

import time

_t0 = time.perf_counter()
import keras  # noqa: E402,F401
import tensorflow  # noqa: E402,F401

IMPORT_SECONDS = time.perf_counter() - _t0
