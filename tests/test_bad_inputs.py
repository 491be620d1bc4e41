"""A battery of bad command lines: each ends with a clear error (one `error:` line, no traceback), a
non-zero exit status, and nothing written. The count of cases here is the tally the project reports."""

from __future__ import annotations

import pytest

from benchmark.cli import main


def _file(tmp_path, name="afile"):
    path = tmp_path / name
    path.write_text("x")
    return str(path)


def _truncated_results(tmp_path):
    results = tmp_path / "res"
    cells = results / "cells" / "smoke"
    cells.mkdir(parents=True)
    (cells / "cell.parquet").write_bytes(b"PAR1 truncated")
    return str(results)


# (id, argv builder, exit status, words the error must hold)
CASES = [
    ("unknown suite", lambda t: ["run", "--suite", "smok", "--results", f"{t}/r"], 2, "smoke"),
    ("unknown method", lambda t: ["run", "--methods", "lgmm", "--results", f"{t}/r"], 2, "lgm"),
    ("unknown backbone", lambda t: ["run", "--backbones", "vit_s14", "--results", f"{t}/r"], 2, "vit_s14_imgfocus"),
    ("unknown dataset", lambda t: ["run", "--datasets", "fashion", "--results", f"{t}/r"], 2, "unknown"),
    ("unknown protocol", lambda t: ["run", "--protocol", "papr", "--results", f"{t}/r"], 2, "paper"),
    ("zero seeds", lambda t: ["run", "--seeds", "0", "--results", f"{t}/r"], 2, "--seeds"),
    ("negative seeds", lambda t: ["run", "--seeds", "-2", "--results", f"{t}/r"], 2, "--seeds"),
    ("seeds not a number", lambda t: ["run", "--seeds", "five", "--results", f"{t}/r"], 2, "--seeds"),
    ("zero ipc", lambda t: ["run", "--ipc", "0", "--results", f"{t}/r"], 2, "--ipc"),
    ("results is a file", lambda t: ["run", "--suite", "smoke", "--results", _file(t)], 2, "is a file"),
    ("results under a file", lambda t: ["run", "--suite", "smoke", "--results", _file(t) + "/r"], 2, "is a file"),
    ("results empty", lambda t: ["run", "--suite", "smoke", "--results", ""], 2, "empty"),
    ("device meta", lambda t: ["run", "--suite", "smoke", "--results", f"{t}/r", "--device", "meta"], 2, "meta"),
    ("device unknown", lambda t: ["run", "--suite", "smoke", "--results", f"{t}/r", "--device", "tpu9"], 2,
     "not a device"),
    ("device absent GPU", lambda t: ["run", "--suite", "smoke", "--results", f"{t}/r", "--device", "cuda:9"], 2,
     "cuda"),
    ("report without results", lambda t: ["report", "--results", f"{t}/none", "--out", f"{t}/o"], 2, "run"),
    ("report results is a file", lambda t: ["report", "--results", _file(t), "--out", f"{t}/o"], 2, "results"),
    ("report out is a file", lambda t: ["report", "--results", str(t), "--out", _file(t, "out")], 2, "is a file"),
    ("report out empty", lambda t: ["report", "--results", str(t), "--out", ""], 2, "empty"),
    ("report on a broken cell file", lambda t: ["report", "--results", _truncated_results(t), "--out", f"{t}/o"],
     1, "--allow-broken"),
    ("parity without results", lambda t: ["parity", "--results", f"{t}/none"], 2, "run --suite parity"),
    ("list of nothing", lambda t: ["list", "recipes"], 2, "choose from"),
    ("unknown command", lambda t: ["train"], 2, "invalid choice"),
]


@pytest.mark.parametrize(("argv", "status", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_a_clear_error(tmp_path, capsys, monkeypatch, argv, status, words):
    monkeypatch.chdir(tmp_path)
    args = argv(tmp_path)
    if "cuda:9" in args and __import__("torch").cuda.device_count() > 9:
        pytest.skip("this machine has ten GPUs")
    before = {p for p in tmp_path.rglob("*")}
    try:
        code = main(args)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    err = capsys.readouterr().err
    assert code == status
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1, err
    assert words in errors[0] or words in err, err
    assert {p for p in tmp_path.rglob("*")} == before  # nothing written, not even a directory

