"""`dockyard build`'s display: each step closed with its duration; on a terminal a
silent step's elapsed time ticks (a thread only then: plain output starts none)."""

from __future__ import annotations

import io
import re
import threading
import time

from dockyard.cli.build_context import StepDisplay


def test_plain_output_closes_each_step_and_starts_no_thread():
    before = threading.active_count()
    out = io.StringIO()
    display = StepDisplay(out, terminal=False)
    assert threading.active_count() == before
    display.write("Step 1/2 : RUN x\n")
    display.write(" ---> abc\n")
    display.write("Step 2/2 : CMD y\n")
    display.write("Successfully built abc\n")
    display.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "Step 1/2 : RUN x"
    assert lines[2].startswith(" ---> Step 1/2 took ") and lines[2].endswith("s")
    assert lines[3] == "Step 2/2 : CMD y" and lines[4].startswith(" ---> Step 2/2 took ")
    assert "\x1b" not in out.getvalue()


def test_a_terminal_shows_a_silent_steps_time_ticking():
    out = io.StringIO()
    display = StepDisplay(out, terminal=True)
    display.write("Step 1/1 : RUN sleep 2\n")
    time.sleep(2.2)  # ticks from 1 s of silence on, every 0.2 s
    display.write("Successfully built abc\n")
    display.close()
    text = out.getvalue()
    assert "\r\x1b[K ... Step 1/1 " in text  # ticking after a second of silence
    took = re.search(r" ---> Step 1/1 took (\d+\.\d\d)s\n", text)
    assert took is not None and float(took.group(1)) >= 2.2, text
