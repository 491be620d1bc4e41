"""Signals that end a job early (preemption, time limit), turned into a checkpoint at a safe point.

Slurm preempts a job with SIGTERM followed, after the partition's ``GraceTime``, by SIGKILL; before a
job's time limit it sends the signal submitit asks for (``--signal=USR2@90``). submitit's own handlers
only log SIGTERM ("Bypassing signal SIGTERM"), and on USR2 requeue the job from inside the handler,
wherever the main thread happens to be: an LGM run then restarts from its last periodic checkpoint.
This module replaces those handlers in the job process by ones that only note the signal; long loops
save their state at the next safe point and stop, and the job then gives the signal back to submitit,
which requeues it; the rerun resumes from the state saved.

The API (``benchmark.launch.jobs`` installs it in every submitit job; loops only call
:func:`checkpoint_point`)::

    from benchmark import preemption

    preemption.install()              # in the job process, main thread, after submitit's handlers
    ...
    for epoch in range(done, epochs): # any long loop that can save where it is
        train_one_epoch()
        done = epoch + 1
        preemption.checkpoint_point(save, f"epoch {done}")   # save(): what a rerun resumes from

- :func:`install` ``(signals=(SIGTERM, SIGUSR1, SIGUSR2), patience_s=20)``: our handlers for
  ``signals``; they record the first signal and when it came, nothing more (no work in a handler).
- :func:`requested` ``-> str | None``: the name of the signal received ("SIGTERM"), else None.
- :func:`checkpoint_point` ``(save, where)``: nothing unless a signal was received; then ``save()``,
  the log line "preempted by SIGTERM at <where>; checkpoint saved", and ``raise Preempted``.
- :class:`Preempted`: raised by the loop after its checkpoint, with ``signal`` and ``where``. It derives
  from ``BaseException`` (like ``KeyboardInterrupt``), so the ``except Exception`` that turn a cell's
  error into an error row, and submitit's that turn a job's into a failed result, let it through: a
  preempted cell is not a failed one, and nothing is recorded for it.
- :func:`hand_over`: called by the job that caught :class:`Preempted`: the signal goes to the handler
  submitit set for its checkpoint-and-requeue signal (``SUBMITIT_PREEMPT_SIGNAL``, USR2 by default) as
  if it arrived now: submitit checkpoints the job object, requeues the job (``scontrol requeue``) and
  exits. Slurm would not requeue a preempted job that exits on its own within the grace time (it ends
  COMPLETED or FAILED), hence the requeue for SIGTERM too.
- :func:`stand_down`: called by the job once its work is recorded: later signals are ignored (a
  time-limit warning that comes while the process exits would otherwise kill it: Python gives the
  signals their default action back while it shuts down, and Slurm would call the job FAILED).
- A signal that no safe point takes up within ``patience_s`` (work without safe points: a probe, a
  feature cache being filled) is handed over the same way: a watcher thread re-sends submitit's signal,
  which our handler then passes straight to submitit's, so the job is still requeued in time.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)
PATIENCE_S = 20.0  # submitit warns 90 s before a time limit (30 s for --timeout-min 1)
POLL_S = 0.25


class Preempted(BaseException):
    """A loop stopped on a signal after saving its checkpoint; ``where`` says where it stopped."""

    def __init__(self, signal_name: str, where: str) -> None:
        super().__init__(f"preempted by {signal_name} at {where}; checkpoint saved")
        self.signal = signal_name
        self.where = where


@dataclass
class _State:
    received: tuple[int, float] | None = None  # (signal number, time.time()) of the first signal
    previous: dict[int, Any] = field(default_factory=dict)  # the handlers ours replaced
    taken: bool = False  # a safe point took the signal up
    handed: bool = False  # handed back to the previous handlers
    patience_s: float = PATIENCE_S
    generation: int = 0  # bumped by uninstall: an old watcher stops
    lock: threading.Lock = field(default_factory=threading.Lock)  # never taken in a handler


_state = _State()


def _note(signum: int, frame: Any) -> None:
    if _state.handed:  # re-sent by the watcher: to the handler ours replaced, as if ours were not there
        previous = _state.previous.get(signum)
        if callable(previous):
            previous(signum, frame)
        return
    if _state.received is None:
        _state.received = (signum, time.time())


def installed() -> bool:
    return bool(_state.previous)


def install(signals: Iterable[int] = SIGNALS, patience_s: float = PATIENCE_S) -> None:
    """Our handlers for ``signals`` (main thread only); the ones they replace are kept for
    :func:`hand_over`. A second call changes nothing."""
    if installed():
        return
    _state.patience_s = patience_s
    for signum in signals:
        _state.previous[signum] = signal.signal(signum, _note)
    threading.Thread(target=_watch, args=(_state.generation,), name="preemption-watch", daemon=True).start()


def uninstall() -> None:
    """Put the previous handlers back and forget any signal received (tests; a process reused)."""
    with _state.lock:
        _restore()
        _state.previous.clear()
        _state.received = None
        _state.taken = _state.handed = False
        _state.generation += 1


def requested() -> str | None:
    """The name of the signal received since :func:`install` ("SIGTERM"), else None."""
    received = _state.received
    return None if received is None else signal.Signals(received[0]).name


def checkpoint_point(save: Callable[[], None], where: str) -> None:
    """A safe point of a long loop (after a completed step): when a signal was received, ``save()``,
    say so and raise :class:`Preempted`; otherwise nothing."""
    name = requested()
    if name is None:
        return
    with _state.lock:
        if _state.handed:  # the watcher gave the signal back already: submitit's handler is on its way
            return
        _state.taken = True
    save()
    log.warning("preempted by %s at %s; checkpoint saved", name, where)
    raise Preempted(name, where)


def handover_signal() -> int:
    """The signal submitit checkpoints and requeues on (its ``SUBMITIT_PREEMPT_SIGNAL``, USR2 by default)."""
    name = os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")
    return int(getattr(signal, f"SIG{name}", signal.SIGUSR2))


def _restore() -> dict[int, Any]:
    previous = dict(_state.previous)
    for signum, handler in previous.items():
        signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
    return previous


def hand_over() -> None:
    """Give the signal received to the handler that was installed for :func:`handover_signal` before
    ours (submitit's: checkpoint the job object, requeue, exit), as if it arrived now. Nothing when no
    signal came, when it was handed over already, or when no such handler was there."""
    with _state.lock:
        if _state.received is None or _state.handed:
            return
        _state.handed = True
    signum = handover_signal()
    handler = _restore().get(signum, signal.getsignal(signum))
    if callable(handler):
        handler(signum, None)


def stand_down() -> None:
    """The job's work is done and recorded: ignore our signals from now on (the watcher stands down)."""
    with _state.lock:
        if not installed():
            return
        _state.handed = True
        for signum in _state.previous:
            signal.signal(signum, signal.SIG_IGN)


def _watch(generation: int) -> None:
    """Say when a signal came; hand it over if no safe point took it up within the patience."""
    announced = False
    while generation == _state.generation:
        time.sleep(POLL_S)
        received = _state.received
        if received is None:
            continue
        if not announced:
            announced = True
            log.warning("received %s; stopping at the next safe point", signal.Signals(received[0]).name)
        if time.time() - received[1] < _state.patience_s:
            continue
        with _state.lock:
            if _state.taken or _state.handed or generation != _state.generation:
                return
            _state.handed = True
        log.warning("no safe point within %.0f s of %s: handing it to submitit (requeue without a checkpoint)",
                    _state.patience_s, signal.Signals(received[0]).name)
        # a thread may not set handlers, but may send a signal: Python runs the handler in the main
        # thread, where _note passes it on to submitit's
        os.kill(os.getpid(), handover_signal())
        return
