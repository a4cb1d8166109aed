"""Interrupts and fault injection, for the trainer and the sweep runner (no JAX here).

`StopRequest` turns SIGINT (Ctrl-C) and SIGTERM (what a cluster scheduler sends before
it kills a job) into a request that the trainer honours at its next safe point: it
finishes the chunk in flight, writes its metrics and a checkpoint, records
`status: interrupted` and returns; the sweep runner then takes no further runs.  A
second Ctrl-C aborts at once (KeyboardInterrupt), for the impatient.

`BSZ_LR_FAULT=KIND@STEP` (KIND: sigkill, sigterm, sigint, error) makes the trainer hurt
itself once, when it is about to train step STEP or later: the test suite's deterministic
kill / interrupt / crash at a chosen step.
"""

from __future__ import annotations

import os
import signal
import threading

__all__ = ["StopRequest", "maybe_inject_fault", "EXIT_CODES"]

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}   # the shell's 128 + signal number


class StopRequest:
    """Context manager: while active, SIGINT / SIGTERM set `signum` instead of killing the process.

    Nested use shares the outer request (a sweep worker's loop and the trainer inside it).
    Outside the main thread (where Python cannot install handlers) it only carries the flag.
    """

    _active: "StopRequest | None" = None

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict = {}
        self._outer: StopRequest | None = None

    @classmethod
    def current(cls) -> "StopRequest":
        return cls._active or cls()

    def __enter__(self) -> "StopRequest":
        self._outer = StopRequest._active
        if self._outer is not None:
            return self._outer
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        StopRequest._active = self
        return self

    def __exit__(self, *exc) -> None:
        if self._outer is not None:
            return
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
        StopRequest._active = None

    def _handle(self, signum, frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt      # second Ctrl-C: stop now
        self.signum = signum

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""


def maybe_inject_fault(start_step: int, step: int) -> None:
    """Act on BSZ_LR_FAULT=KIND@STEP once, if this attempt started before STEP and has reached it."""
    spec = os.environ.get("BSZ_LR_FAULT", "")
    if not spec or "@" not in spec:
        return
    kind, _, at = spec.partition("@")
    if not (start_step < int(at) <= step):
        return
    os.environ["BSZ_LR_FAULT"] = ""                     # once per process
    if kind == "error":
        raise RuntimeError(f"injected fault at step {step} (BSZ_LR_FAULT)")
    sig = {"sigkill": signal.SIGKILL, "sigterm": signal.SIGTERM, "sigint": signal.SIGINT}[kind]
    os.kill(os.getpid(), sig)
