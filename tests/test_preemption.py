"""benchmark.preemption: a signal only sets a flag; the next safe point saves and raises Preempted; the
job hands the signal back to submitit; the LGM loop stops at a step and resumes to the same images."""

from __future__ import annotations

import logging
import os
import signal
import time

import pytest
import torch

from benchmark import preemption
from benchmark.preemption import Preempted, checkpoint_point
from method import checkpoint
from method.distill import Distiller
from tests.test_lgm import toy_backbone, toy_config, toy_train


@pytest.fixture
def handlers():
    """Our handlers over a stand-in for submitit's USR2 handler, which records what it is given."""
    given: list[int] = []
    before = {s: signal.getsignal(s) for s in preemption.SIGNALS}
    signal.signal(signal.SIGUSR2, lambda signum, frame: given.append(signum))
    preemption.install(patience_s=60)
    yield given
    preemption.uninstall()
    for signum, handler in before.items():
        signal.signal(signum, handler)


def test_a_signal_is_noted_and_the_next_safe_point_saves_once_and_raises(handlers, caplog) -> None:
    saved = []
    checkpoint_point(lambda: saved.append(1), "step 1")  # no signal: nothing
    assert preemption.requested() is None and saved == []
    os.kill(os.getpid(), signal.SIGTERM)
    assert preemption.requested() == "SIGTERM" and saved == []  # the handler did no work
    with caplog.at_level(logging.WARNING, logger="benchmark.preemption"), pytest.raises(Preempted) as stop:
        checkpoint_point(lambda: saved.append(2), "step 7")
    assert saved == [2] and (stop.value.signal, stop.value.where) == ("SIGTERM", "step 7")
    assert "preempted by SIGTERM at step 7; checkpoint saved" in caplog.text
    assert not isinstance(stop.value, Exception)  # the runner's `except Exception` lets it pass
    os.kill(os.getpid(), signal.SIGUSR2)  # a second signal does not replace the first
    assert preemption.requested() == "SIGTERM" and handlers == []


def test_hand_over_gives_the_signal_to_submitits_handler_and_restores_it(handlers) -> None:
    ours = signal.getsignal(signal.SIGTERM)
    os.kill(os.getpid(), signal.SIGUSR1)
    with pytest.raises(Preempted):
        checkpoint_point(lambda: None, "step 3")
    preemption.hand_over()
    assert handlers == [signal.SIGUSR2]  # submitit's checkpoint-and-requeue handler, called once
    assert signal.getsignal(signal.SIGTERM) is not ours
    preemption.hand_over()
    assert handlers == [signal.SIGUSR2]


def test_a_signal_no_safe_point_takes_up_goes_to_submitit_after_the_patience(handlers) -> None:
    preemption.uninstall()
    preemption.install(patience_s=0.3)
    os.kill(os.getpid(), signal.SIGTERM)
    deadline = time.monotonic() + 10
    while not handlers and time.monotonic() < deadline:
        time.sleep(0.05)
    assert handlers == [signal.SIGUSR2]
    checkpoint_point(lambda: pytest.fail("saved after the hand-over"), "step 9")  # submitit has it now


def test_after_stand_down_signals_are_ignored(handlers) -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    preemption.stand_down()  # the job's cells are written: a late time-limit warning must not kill its exit
    os.kill(os.getpid(), signal.SIGUSR2)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.6)  # longer than the watcher's poll: it stood down too
    assert handlers == [] and signal.getsignal(signal.SIGUSR2) == signal.SIG_IGN
    checkpoint_point(lambda: pytest.fail("saved after standing down"), "step 2")


def test_lgm_stops_at_the_step_the_signal_came_in_and_resumes_to_the_same_images(handlers, tmp_path,
                                                                                 caplog) -> None:
    cfg = toy_config(steps=8, grow_every=2, checkpoint_every=0)
    train = toy_train()
    reference = Distiller(cfg, train, toy_backbone(), ipc=2, seed=7).run()

    def signal_at(step: int, value: float) -> None:
        if step == 5:
            os.kill(os.getpid(), signal.SIGTERM)

    stopped = Distiller(cfg, train, toy_backbone(), ipc=2, seed=7, artifact_dir=tmp_path, on_step=signal_at)
    with pytest.raises(Preempted) as stop:
        stopped.run()
    assert stop.value.where == "step 5"
    assert torch.load(tmp_path / checkpoint.FILENAME, weights_only=True)["state"]["step"] == 5
    preemption.uninstall()
    resumed = Distiller(cfg, train, toy_backbone(), ipc=2, seed=7, artifact_dir=tmp_path)
    with caplog.at_level(logging.INFO, logger="method.distill"):
        images = resumed.run()
    assert resumed.resumed_from == 5 and "at step 5" in caplog.text
    assert torch.equal(images, reference)
