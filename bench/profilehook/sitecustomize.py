"""Loaded into every process the bench starts (``PYTHONPATH`` = this folder): SIGUSR1 starts pyinstrument
on the main thread, SIGUSR2 stops it and writes the text profile to ``$BENCH_PROFILE_DIR/<pid>.txt``.
Idle until signalled, so measured runs are not profiled; a missed target's scenario is re-run under it."""

import os
import signal

_dir = os.environ.get("BENCH_PROFILE_DIR")
if _dir:
    _state = {}

    def _start(signum, frame):  # noqa: ANN001
        from pyinstrument import Profiler

        _state["p"] = Profiler(interval=0.001, async_mode="disabled")
        _state["p"].start()

    def _stop(signum, frame):  # noqa: ANN001
        p = _state.pop("p", None)
        if p is None:
            return
        p.stop()
        path = os.path.join(_dir, f"{os.getpid()}.txt")
        with open(path + ".tmp", "w") as f:
            f.write(p.output_text(unicode=True, color=False))
        os.replace(path + ".tmp", path)

    signal.signal(signal.SIGUSR1, _start)
    signal.signal(signal.SIGUSR2, _stop)
