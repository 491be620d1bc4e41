from __future__ import annotations

import pytest

from benchmark.cli import main


@pytest.mark.parametrize(("flag", "name", "close"), [
    ("--suite", "smok", "smoke"),
    ("--methods", "random_rel", "random_real"),
    ("--backbones", "effnet_lite", "effnet_lite0"),
    ("--datasets", "fashion_mnist_embeded", "fashion_mnist_embedded"),
])
def test_unknown_names_exit_2_with_close_matches_and_write_nothing(tmp_path, capsys, flag, name, close) -> None:
    results = tmp_path / "results"
    code = main(["run", flag, name, "--results", str(results)])
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown" in err and repr(name) in err and close in err
    assert not results.exists()
    assert not any(tmp_path.iterdir())


def test_bad_numbers_exit_2(tmp_path, capsys) -> None:
    assert main(["run", "--seeds", "0", "--results", str(tmp_path / "r")]) == 2
    assert "--seeds" in capsys.readouterr().err
    assert main(["run", "--ipc", "0", "--results", str(tmp_path / "r")]) == 2
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("what", ["methods", "backbones", "datasets", "suites", "probes"])
def test_list_prints_each_entry_with_a_description(capsys, what) -> None:
    assert main(["list", what]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines
    for line in lines:
        name, _, description = line.partition("  ")
        assert name.strip() and description.strip(), line


def test_list_methods_names_the_builtin_methods(capsys) -> None:
    main(["list", "methods"])
    names = {line.split()[0] for line in capsys.readouterr().out.splitlines()}
    assert {"random_real", "full_data"} <= names


def test_dry_run_lists_cells_and_writes_nothing(tmp_path, capsys) -> None:
    results = tmp_path / "results"
    assert main(["run", "--suite", "smoke", "--dry-run", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "suite smoke:" in out and "[todo]" in out
    assert not results.exists()


def test_report_without_results_exits_2(tmp_path, capsys) -> None:
    assert main(["report", "--results", str(tmp_path / "none"), "--out", str(tmp_path / "out")]) == 2
    assert "run `python -m benchmark run` first" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_help_explains_the_commands(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--suite", "--methods", "--backbones", "--datasets", "--ipc", "--seeds", "--protocol",
                 "--results", "--dry-run"):
        assert flag in out
