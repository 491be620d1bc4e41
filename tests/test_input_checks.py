"""Bad input fails before any work, in one line with exit 2; interrupted and killed runs leave no mess;
stored sets are checked against their checksum."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
import torch

from benchmark import cli
from benchmark.artifacts import PAYLOAD, ArtifactKey, ArtifactStore
from benchmark.checks import InputError, output_directory, usable_device
from benchmark.cli import main
from benchmark.paths import atomic_write_bytes, make_temp, remove_stale_temps
from benchmark.types import SyntheticSet


@pytest.fixture
def no_runner(monkeypatch):
    """Any attempt to start work fails the test: the error must come first."""
    import benchmark.runner

    def refuse(*args, **kwargs):
        raise AssertionError("work started before the input was checked")

    monkeypatch.setattr(benchmark.runner, "Runner", refuse)


# -- paths and devices, before any work ---------------------------------------------------------------

def test_results_naming_a_file_is_one_line_exit_2(tmp_path, capsys, no_runner):
    target = tmp_path / "results.txt"
    target.write_text("not a directory")
    assert main(["run", "--suite", "smoke", "--results", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "is a file, not a directory" in err
    assert target.read_text() == "not a directory"


def test_results_under_a_file_and_empty_results(tmp_path, capsys, no_runner):
    (tmp_path / "plain").write_text("x")
    assert main(["run", "--suite", "smoke", "--results", str(tmp_path / "plain" / "results")]) == 2
    assert "cannot be made there" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["run", "--suite", "smoke", "--results", ""])
    assert info.value.code == 2
    assert "--results: is empty" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain"]


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
def test_unwritable_results_directory_fails_before_work(capsys, no_runner):
    assert main(["run", "--suite", "smoke", "--results", "/proc/self/lgm-results"]) == 2
    assert "is not writable" in capsys.readouterr().err


@pytest.mark.parametrize("device", ["meta", "cuda:7", "bogus"] + ([] if torch.backends.mps.is_available() else ["mps"]))
def test_unusable_devices_fail_before_work(tmp_path, capsys, no_runner, device):
    if device == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    assert main(["run", "--suite", "smoke", "--results", str(tmp_path / "r"), "--device", device]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and err.count("\n") == 0 and "device" in err
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_checks_accept_what_works(tmp_path):
    assert output_directory(tmp_path / "new" / "deep", "--results") == tmp_path / "new" / "deep"
    assert (tmp_path / "new" / "deep").is_dir() and not any((tmp_path / "new" / "deep").iterdir())
    assert output_directory(tmp_path / "dry", "--results", create=False) == tmp_path / "dry"
    assert not (tmp_path / "dry").exists()
    assert usable_device(torch.device("cpu")).type == "cpu"
    with pytest.raises(InputError, match="meta"):
        usable_device(torch.device("meta"))


# -- interruption ------------------------------------------------------------------------------------

def test_ctrl_c_says_how_to_continue_and_exits_130(tmp_path, capsys, monkeypatch):
    import benchmark.runner

    class Interrupted:
        def __init__(self, *args, **kwargs):
            pass

        def run(self):
            raise KeyboardInterrupt

    monkeypatch.setattr(benchmark.runner, "Runner", Interrupted)
    assert main(["run", "--suite", "smoke", "--results", str(tmp_path / "r")]) == cli.EXIT_INTERRUPTED == 130
    err = capsys.readouterr().err
    assert "interrupted; run the same command again to continue" in err and "Traceback" not in err


# -- temp files --------------------------------------------------------------------------------------

def test_temp_files_are_unpredictable_and_never_follow_a_link(tmp_path):
    target = tmp_path / "cell.parquet"
    a, b = make_temp(target), make_temp(target)
    assert a != b and a.parent == b.parent == tmp_path and str(os.getpid()) in a.name
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    for guess in (f".{target.name}.{os.getpid()}.tmp", f".{target.name}.{os.getpid()}.tmp.parquet"):
        (tmp_path / guess).symlink_to(victim)  # the names the old code would have used
    atomic_write_bytes(target, b"data")
    assert target.read_bytes() == b"data" and victim.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir() if not p.is_symlink()) == sorted([a.name, b.name, "cell.parquet",
                                                                                       "victim"])


def test_atomic_writes_get_the_mode_a_plain_write_gets(tmp_path):
    # a results directory or report on a shared file system: mkstemp's 0600 would hide it from the group
    plain = tmp_path / "plain.txt"
    plain.write_bytes(b"x")
    atomic_write_bytes(tmp_path / "cell.parquet", b"data")
    mode = (tmp_path / "cell.parquet").stat().st_mode & 0o777
    assert mode == plain.stat().st_mode & 0o777 and mode & 0o044  # readable by group and others (umask 022)


def test_stale_temps_of_dead_writers_are_removed_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(dead.stdout)
    (tmp_path / "features").mkdir()
    orphan = tmp_path / "features" / f".abc.safetensors.{dead_pid}.k3j9x.tmp"
    orphan.write_bytes(b"half")
    live = make_temp(tmp_path / "cells" / "x.parquet")  # this process: a writer still at work
    other = tmp_path / "features" / "abc.tmp.notes"
    other.write_text("not ours")
    assert remove_stale_temps(tmp_path) == [orphan]
    assert not orphan.exists() and live.exists() and other.exists()


def test_run_cleans_stale_temps_in_results_and_cache(tmp_path, monkeypatch, capsys):
    import benchmark.runner

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    cache = tmp_path / "cache"
    monkeypatch.setenv("LGM_BENCH_CACHE", str(cache))
    orphans = [cache / "features" / f".k.safetensors.{int(dead.stdout)}.q1w2e3.tmp",
               tmp_path / "r" / "cells" / "smoke" / f".c.parquet.{int(dead.stdout)}.a1b2c3.tmp.parquet"]
    for path in orphans:
        path.parent.mkdir(parents=True)
        path.write_bytes(b"half")

    class Done:
        def __init__(self, *args, **kwargs):
            pass

        def run(self):
            from benchmark.runner import RunSummary

            return RunSummary()

    monkeypatch.setattr(benchmark.runner, "Runner", Done)
    assert main(["run", "--suite", "smoke", "--results", str(tmp_path / "r")]) == 0
    assert not any(p.exists() for p in orphans)


# -- artifact checksums ------------------------------------------------------------------------------

def test_a_flipped_bit_in_a_stored_set_is_reported_and_the_set_made_again(tmp_path, caplog):
    store = ArtifactStore(tmp_path)
    key = ArtifactKey("toy", "fp", {"method": "centroids"}, "toy_a", None, 1, 0)
    synset = SyntheticSet(labels=torch.tensor([0, 1, 2]), indices=torch.tensor([5, 17, 29]))
    directory = store.save(key, synset, {})
    loaded, meta = store.load(key)
    assert torch.equal(loaded.indices, synset.indices) and len(meta["payload_sha256"]) == 64
    payload = bytearray((directory / PAYLOAD).read_bytes())
    payload[-3] ^= 0x01  # one bit of the last tensor's data
    (directory / PAYLOAD).write_bytes(bytes(payload))
    with caplog.at_level(logging.WARNING, logger="benchmark.artifacts"):
        assert store.load(key) is None
    assert "does not match the sha256" in caplog.text and store.rejected == [directory]
    store.save(key, synset, {})  # made again: it loads clean
    assert torch.equal(store.load(key)[0].indices, synset.indices)
