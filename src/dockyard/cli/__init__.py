"""cli layer (see DESIGN.md)."""

import time as _time

# The CLI's first instant on CLOCK_MONOTONIC: where its track of a start trace begins.
STARTED_NS = _time.perf_counter_ns()
