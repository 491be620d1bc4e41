"""``python -m benchmark``: run suites, render reports, list what is registered."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .registry import BACKBONES, DATASETS, METHODS, PROBES, SUITES, Registry, RegistryError
from .suites import DEFAULT_SUITE, Suite

LISTABLE: dict[str, Registry] = {
    "methods": METHODS, "backbones": BACKBONES, "datasets": DATASETS, "suites": SUITES, "probes": PROBES,
}
EXIT_FAILED_CELLS = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


class UsageError(Exception):
    """Bad input from the user: printed without a traceback, exit status 2 (each line of the message as
    its own ``error:`` line)."""


def directory_arg(text: str) -> Path:
    """``type=`` for directory options: an empty string is an error (``Path("")`` would mean ``.``)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty; give a directory, e.g. results")
    return Path(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmark",
        description="lgm-bench: dataset distillation for linear probes on frozen pretrained backbones.",
        epilog="Start with `python -m benchmark run` (the embedded default, offline), then "
               "`python -m benchmark report`.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{run,report,parity,calibrate,status,eval,list}")

    run = sub.add_parser("run", help="run a suite (default: the embedded default suite)",
                         description="Run every cell of a suite; finished cells are skipped, so an "
                                     "interrupted run continues where it stopped.")
    run.add_argument("--suite", default=DEFAULT_SUITE, help=f"suite name (default: {DEFAULT_SUITE}; "
                     "see `list suites`) or a suite file, path/to/suite.toml (docs/references.md)")
    run.add_argument("--methods", nargs="+", metavar="NAME", help="only these methods")
    run.add_argument("--backbones", nargs="+", metavar="NAME", help="only these backbones")
    run.add_argument("--datasets", nargs="+", metavar="NAME", help="only these datasets")
    run.add_argument("--ipc", nargs="+", type=int, metavar="K", help="images per class")
    run.add_argument("--seeds", type=int, metavar="N", help="probe seeds per cell (and selection seeds "
                     "for random real images)")
    run.add_argument("--protocol", help="probe protocol: paper (docs/evaluation.md) or fast "
                     "(cached features, lr chosen on a validation split of train)")
    run.add_argument("--results", type=directory_arg, default=Path("results"), help="results directory "
                     "(default: ./results)")
    run.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    run.add_argument("--dry-run", action="store_true", help="list the cells and what they need; run nothing")
    run.add_argument("--check", action="store_true", help="only the preflight every run starts with: the "
                     "datasets, weights, options, ipc, images and disk space the cells to run need; exit 2 "
                     "naming each problem, 0 when all is well; nothing is written")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    jobs = run.add_argument_group("jobs", "run the cells as submitit jobs (README: Running on a Slurm cluster)")
    jobs.add_argument("--executor", choices=("inline", "local", "slurm"), default="inline",
                      help="inline: in this process (default); local: processes on this machine, one per "
                           "GPU; slurm: Slurm jobs (needs lgm-bench[slurm])")
    jobs.add_argument("--jobs", type=int, metavar="N", help="local: number of processes (default: one per "
                      "visible GPU, 1 without); slurm: array tasks running at once (default: no limit)")
    jobs.add_argument("--partition", help="slurm: partition")
    jobs.add_argument("--gpus-per-job", type=int, metavar="N", help="GPUs per job (default 1 where there are GPUs)")
    jobs.add_argument("--cpus-per-job", type=int, metavar="N", help="slurm: CPUs per task; local: torch threads "
                      "per process")
    jobs.add_argument("--mem", type=int, metavar="GB", help="slurm: memory per job in GB")
    jobs.add_argument("--timeout-min", type=int, metavar="MIN", help="time limit per job in minutes (slurm "
                      "default 1440); a job out of time is requeued and continues where it stopped")
    jobs.add_argument("--max-requeues", type=int, metavar="N", help="slurm: time-limit requeues a task may take "
                      "before it is failed (default 20; preemptions do not count); a cell longer than N + 1 "
                      "time limits needs more")
    jobs.add_argument("--slurm-arg", action="append", default=[], metavar="KEY=VALUE",
                      help="any other sbatch option, repeatable (e.g. --slurm-arg account=abc)")
    jobs.add_argument("--wait", action="store_true", help="slurm: wait for the jobs and summarise them")
    run.add_argument("--workers", type=int, metavar="N", help="image decode workers; default from the CPU "
                     "count; 0 = decode in the main process")
    rehearse = run.add_argument_group("rehearsal", "a short run on real data before the long one (README: "
                                      "Rehearse before the long run); its cells are other cells than the "
                                      "full run's, and the report labels them")
    rehearse.add_argument("--limit", metavar="N", help="N images per class (an integer), or that fraction of "
                          "each class (a number between 0 and 1), of the train and the test split; the same "
                          "rows on every machine and for every backbone")
    rehearse.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME.OPTION=VALUE",
                          help="one option of a method, the probe or a backbone of the suite for this run, "
                               "repeatable: lgm.steps=20, paper.epochs=2, dinov2_vitb14.input_size=56, "
                               "clip_vitb16.weights=/path/file.safetensors (VALUE as in TOML; "
                               "method:NAME.OPTION where a name is ambiguous)")

    report = sub.add_parser("report", help="render LaTeX/Markdown tables, figures and a web page from results",
                            description="Read the Parquet results and write tables and figures, and "
                                        "index.html: one static page (open it in a browser; it loads "
                                        "nothing from the network). Only the cells made with the settings "
                                        "the suites are defined with now are reported; stale ones are "
                                        "counted.")
    report.add_argument("--results", type=directory_arg, default=Path("results"), help="results directory")
    report.add_argument("--out", type=directory_arg, default=Path("reports"), help="output directory")
    report.add_argument("--all", action="store_true", help="also report stale cells (made with settings "
                        "no current suite definition gives them), the method labelled by config")
    report.add_argument("--allow-broken", action="store_true", help="report even when some cell files are "
                        "unreadable or invalid (they are left out and listed); default: exit 1")
    report.add_argument("--html-only", action="store_true", help="write only the page, <out>/index.html (with "
                        "the CSV of its tables and the PNG figures and images it shows), no LaTeX or Markdown")

    parity = sub.add_parser("parity", help="the parity suite's table: top-1 and matching loss per 100 updates",
                            description="Summarise `run --suite parity`: per LGM seed, fast-probe top-1 and "
                                        "the mean matching loss per 100-update window, beside random real "
                                        "images; the numbers to compare with the official code's.")
    parity.add_argument("--results", type=Path, default=Path("results"), help="results directory")
    parity.add_argument("--suite", default="parity", help="suite whose rows to summarise (default: parity)")

    calibrate = sub.add_parser(
        "calibrate", help="measure images/s per backbone and input size on this device (for --dry-run)",
        description="Time a no-grad forward and a forward+backward to the input per backbone and input size "
                    "on this device, and the images/s one decode worker gets on the suite's datasets that are "
                    "on this machine (nothing is downloaded); store the table in the cache, where "
                    "`run --dry-run` reads it.")
    calibrate.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    calibrate.add_argument("--suite", default=DEFAULT_SUITE, help="the suite whose backbones (and input sizes) "
                           f"to measure (default: {DEFAULT_SUITE})")
    calibrate.add_argument("--backbones", nargs="+", metavar="NAME", help="only these backbones")
    calibrate.add_argument("--resolutions", nargs="+", type=int, metavar="R",
                           help="input sizes in pixels (default: the sizes the suite runs each backbone at)")
    calibrate.add_argument("--batch", type=int, default=32, metavar="N", help="images per pass (default 32)")
    calibrate.add_argument("--iterations", type=int, default=5, metavar="N", help="timed passes (default 5)")
    calibrate.add_argument("--warmup", type=int, default=2, metavar="N", help="untimed passes first (default 2)")
    calibrate.add_argument("--datasets", nargs="+", metavar="NAME", help="time decoding only on these of the "
                           "suite's datasets")
    calibrate.add_argument("--decode-rows", type=int, default=128, metavar="N", help="rows timed per dataset "
                           "and decode (default 128; 0: skip decoding)")
    calibrate.add_argument("--decode-warmup", type=int, default=8, metavar="N", help="rows decoded untimed first "
                           "(default 8)")

    status = sub.add_parser("status", help="cells done / failed / missing per suite, and the submitted jobs",
                            description="Per suite: the cells done, failed and missing (from the cell files), "
                                        "and the state and logs of the jobs last submitted for it.")
    status.add_argument("--results", type=directory_arg, default=Path("results"), help="results directory")
    status.add_argument("--suite", help="only this suite, by name or suite file (default: every registered suite "
                        "with cells or jobs)")
    status.add_argument("--check", action="store_true", help="also run the preflight of --suite's cells still to "
                        "run (as `run --check`); exit 2 when it finds a problem")

    ev = sub.add_parser("eval", help="score a set made elsewhere (.safetensors, torch file or image folder)",
                        description="Probe a synthetic set made elsewhere on a dataset through each backbone, "
                                    "with the probe seeds of a suite run; rows land under suite 'eval' with "
                                    "method external:<NAME> (docs/references.md).")
    ev.add_argument("--images", required=True, type=Path, metavar="PATH", help=".safetensors or weights-only torch "
                    "file with 'images' (N x 3 x H x W, [0,1] float or uint8) and 'labels' (N), or a folder "
                    "<class>/<image>")
    ev.add_argument("--dataset", required=True, metavar="D", help="dataset name or reference (folder:, parquet:, hub:)")
    ev.add_argument("--backbones", required=True, nargs="+", metavar="B", help="backbone names or references "
                    "(timm:, open_clip:, hf:)")
    ev.add_argument("--protocol", default="fast", help="probe protocol: fast (default) or paper")
    ev.add_argument("--seeds", type=int, default=5, metavar="N", help="probe seeds 3407..3407+N-1 (default 5)")
    ev.add_argument("--like", metavar="SUITE", help="take this suite's probe and backbone options (e.g. default: "
                    "20 training views, its input sizes), so the numbers compare with its cells")
    ev.add_argument("--name", metavar="NAME", help="method label external:NAME (default: the file's stem)")
    ev.add_argument("--results", type=directory_arg, default=Path("results"), help="results directory")
    ev.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    ev.add_argument("--no-progress", action="store_true", help="no progress bars")

    lst = sub.add_parser("list", help="list registered methods, backbones, datasets, suites or probes")
    lst.add_argument("what", choices=sorted(LISTABLE))
    return parser


def check_names(registry: Registry, names: Sequence[str] | None) -> None:
    for name in names or ():
        if name not in registry:
            raise UsageError(registry.unknown_message(name))


def read_suite_file(path: str) -> Suite:
    """The suite a TOML file defines (``run --suite file.toml``); its problems are usage errors."""
    from .suite_files import SuiteFileError, load_suite_file

    try:
        return load_suite_file(path)
    except SuiteFileError as err:
        raise UsageError(str(err)) from None


def record_suite_file(args: argparse.Namespace, suite: Suite) -> None:
    """A suite read from a file is kept under ``<results>/suites/``: ``report`` judges its rows against it."""
    from .suite_files import is_suite_file, record_definition

    if is_suite_file(args.suite):
        record_definition(args.suite, suite, args.results)


def load_suite(name: str) -> Suite:
    """A registered suite by name, or the suite a TOML file defines."""
    from .suite_files import is_suite_file

    if is_suite_file(name):
        return read_suite_file(name)
    if name not in SUITES:
        raise UsageError(SUITES.unknown_message(name))
    return SUITES.get(name)


def suite_from_args(args: argparse.Namespace) -> Suite:
    suite = load_suite(args.suite)
    check_names(METHODS, args.methods)
    check_names(BACKBONES, args.backbones)
    check_names(DATASETS, args.datasets)
    if args.protocol is not None and args.protocol not in PROBES:
        raise UsageError(PROBES.unknown_message(args.protocol))
    if args.seeds is not None and args.seeds < 1:
        raise UsageError("--seeds must be at least 1")
    if args.ipc is not None and min(args.ipc) < 1:
        raise UsageError("--ipc values must be at least 1")
    # a backbone filter narrows the distilling backbones too, so no cell asks for one left out
    distill = None  # None: the suite's own (its backbones, when it names no distilling ones)
    if args.backbones and suite.distill_backbones:
        distill = [b for b in suite.distill_backbones if b in args.backbones]
    return suite.replace(methods=args.methods, backbones=args.backbones, datasets=args.datasets, ipc=args.ipc,
                         seeds=args.seeds, protocol=args.protocol, distill_backbones=distill)


def rehearsal_from_args(args: argparse.Namespace, suite: Suite) -> Suite:
    """The suite with ``--set`` applied and ``--limit`` set (benchmark.overrides); bad input is a usage error."""
    if args.limit is None and not args.overrides:
        return suite
    from .overrides import OverrideError, parse_assignment, rehearsal_suite
    from .rehearsal import limit_label, parse_limit

    try:
        limit = None if args.limit is None else parse_limit(args.limit)
    except ValueError as err:
        raise UsageError(f"--limit {args.limit}: {err}") from None
    for text in args.overrides:
        try:
            suite = rehearsal_suite(suite, None, [parse_assignment(text)])
        except OverrideError as err:
            raise UsageError(f"--set {text}: {err}") from None
    suite = rehearsal_suite(suite, limit)
    what = [f"{limit_label(limit)} of each split" if limit is not None else "",
            f"--set {', '.join(args.overrides)}" if args.overrides else ""]
    print(f"rehearsal of suite {suite.name!r}: {'; '.join(w for w in what if w)} (other cells than the full "
          "run's, labelled in the report)")
    return suite


def remove_killed_runs_temps(results: Path) -> None:
    """Temp files that runs killed part-way left under the results and cache directories."""
    from .paths import cache_root, remove_stale_temps

    for root in (results, cache_root()):
        removed = remove_stale_temps(root)
        if removed:
            logging.getLogger(__name__).info("removed %d stale temp files under %s", len(removed), root)


def preflight(suite: Suite, results: Path, progress: bool) -> None:
    """The preflight of the suite's cells still to run (``benchmark.preflight``): its table on stdout,
    and a UsageError with one line per problem when it found any. Nothing to run: nothing to check."""
    from .preflight import run_preflight
    from .runner import is_done

    pending = [c for c in suite.cells() if not is_done(results, c)]
    if not pending:
        print(f"preflight of suite {suite.name!r}: all its cells are done under {results}; nothing to check")
        return
    report = run_preflight(suite, pending, results, progress=progress)
    print(report.table(), flush=True)
    if not report.ok:
        raise UsageError("\n".join(report.problems))


def cmd_run(args: argparse.Namespace) -> int:
    from .checks import output_directory, parse_device, usable_device
    from .runner import Runner, describe_plan

    if args.workers is not None and args.workers < 0:
        raise UsageError(f"--workers must be at least 0 (0 = decode in the main process), got {args.workers}")
    if args.check and args.dry_run:
        raise UsageError("--check and --dry-run each run nothing: --check checks the inputs, --dry-run lists the "
                         "cells and the cost; pick one")
    given = [f"--{f.replace('_', '-')}" for f in JOB_FLAGS if getattr(args, f) not in (None, [], False)]
    if given and args.executor == "inline":
        raise UsageError(f"{', '.join(given)} apply to jobs: add --executor local or --executor slurm")
    suite = rehearsal_from_args(args, suite_from_args(args))
    cells = suite.cells()
    if not cells:
        raise UsageError(f"suite {suite.name!r} with these filters has no cells; loosen --methods/--backbones")
    try:  # every user error before any work: the device, then the results directory (made last)
        # Slurm jobs resolve the device where they run (a login node may have no GPU)
        device = parse_device(args.device) if args.executor == "slurm" else usable_device(parse_device(args.device))
        # its shape and that it can be made; made once the preflight passed
        output_directory(args.results, "--results", create=False, probe=not args.dry_run)
    except (ValueError, RuntimeError) as err:
        raise UsageError(str(err)) from None
    if not args.dry_run:
        preflight(suite, args.results, progress=not args.no_progress)
        if args.check:
            return 0
        try:
            output_directory(args.results, "--results")
        except ValueError as err:
            raise UsageError(str(err)) from None
    if args.executor != "inline":
        return run_jobs(args, suite)
    if args.dry_run:
        print(describe_plan(suite, args.results, device, workers=args.workers))
        return 0
    record_suite_file(args, suite)
    remove_killed_runs_temps(args.results)
    summary = Runner(suite, args.results, device=device, progress=not args.no_progress, workers=args.workers).run()
    print(f"{summary.ran} cells run, {summary.skipped} skipped (already done), {len(summary.failed)} failed; "
          f"{summary.made_sets} sets made, {summary.reused_sets} reused. Results: {args.results}")
    for line in summary.failed:
        print(f"  FAILED {line}", file=sys.stderr)
    return 0 if summary.ok else EXIT_FAILED_CELLS


JOB_FLAGS = ("jobs", "partition", "gpus_per_job", "cpus_per_job", "mem", "timeout_min", "max_requeues", "slurm_arg",
             "wait")


def run_jobs(args: argparse.Namespace, suite: Suite) -> int:
    """``run --executor local|slurm``: the pending cells as submitit jobs (benchmark/launch)."""
    from .launch.executors import LaunchError, LaunchOptions, launch, parse_slurm_args

    try:
        options = LaunchOptions(args.executor, jobs=args.jobs, partition=args.partition,
                                gpus_per_job=args.gpus_per_job, cpus_per_job=args.cpus_per_job, mem_gb=args.mem,
                                timeout_min=args.timeout_min, max_requeues=args.max_requeues,
                                slurm_args=parse_slurm_args(args.slurm_arg),
                                device=args.device, wait=args.wait, workers=args.workers)
        if not args.dry_run:
            remove_killed_runs_temps(args.results)
        result = launch(suite, args.results, options, dry_run=args.dry_run)
    except LaunchError as err:
        raise UsageError(str(err)) from None
    if not args.dry_run:  # only once jobs were sent: a launch that failed leaves no definition behind
        record_suite_file(args, suite)
    if not result.waited:
        return 0
    print(f"{result.ran} cells run, {result.skipped} skipped (already done), {len(result.failed_cells)} failed; "
          f"{result.made_sets} sets made, {result.reused_sets} reused. Results: {args.results}")
    for line in result.failed_cells:
        print(f"  FAILED {line}", file=sys.stderr)
    return EXIT_FAILED_CELLS if result.failed_cells or result.failed_jobs else 0


def cmd_status(args: argparse.Namespace) -> int:
    from .status import describe_status

    if args.results.exists() and not args.results.is_dir():
        raise UsageError(f"--results {args.results} is a file, not a results directory")
    suites = None
    if args.suite is not None:
        from .suite_files import recorded_definitions

        recorded = recorded_definitions(args.results)  # suites that ran from files, by their name
        suites = [recorded[args.suite] if args.suite in recorded and args.suite not in SUITES
                  else load_suite(args.suite)]
    elif args.check:
        raise UsageError("status --check checks one suite's inputs: add --suite NAME (or a suite file)")
    print(describe_status(args.results, suites))
    if args.check and suites:
        preflight(suites[0], args.results, progress=False)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .checks import output_directory
    from .rehearsal import rehearsal_notes
    from .report import build_report
    from .results import scan_results

    if not args.results.exists():
        raise UsageError(f"no results directory {args.results}; run `python -m benchmark run` first")
    if not args.results.is_dir():
        raise UsageError(f"--results {args.results} is a file, not a results directory")
    try:
        output_directory(args.out, "--out", create=False)  # its shape now; made only when there is a report
    except ValueError as err:
        raise UsageError(str(err)) from None
    scan = scan_results(args.results)
    for skipped in scan.skipped:
        print(f"warning: skipped {skipped}", file=sys.stderr)
    if scan.broken and not args.allow_broken:
        print(f"error: {len(scan.broken)} cell file(s) under {args.results} are unreadable or invalid (listed "
              "above); remove or fix them and rerun `run` to remake those cells, or pass --allow-broken to "
              "report without them", file=sys.stderr)
        return EXIT_FAILED_CELLS
    rows, notes, stale = report_rows(scan.frame, args.all, args.results)
    notes = rehearsal_notes(rows) + notes  # run --limit / --set rows: what their labels stand for
    try:
        output_directory(args.out, "--out")
    except ValueError as err:
        raise UsageError(str(err)) from None
    for note in notes:
        print(note)
    try:
        written = build_report(args.results, args.out, rows=rows, notes=notes, stale=stale, html=True,
                               html_only=args.html_only,
                               warn=lambda message: print(f"warning: {message}", file=sys.stderr))
    except ValueError as err:
        raise UsageError(str(err)) from None
    print(f"wrote {len(written)} files to {args.out}")
    page = args.out / "index.html"
    shown = [p for p in written if p.parent == args.out]  # the page's images are counted, not listed
    for path in shown:
        print(f"  {path}")
    if len(shown) < len(written):
        print(f"  ... and {len(written) - len(shown)} images under {args.out / 'images'}")
    print(f"open {page.resolve().as_uri()} in a browser")
    return 0


def report_rows(frame: Any, include_stale: bool, results: Path) -> tuple[Any, list[str], Any]:
    """The rows ``report`` shows: those of the current suite definitions, plus the stale ones labelled
    by config with ``--all``; what to tell the user about the stale ones; and the stale rows (the page
    counts them)."""
    import pandas as pd

    from .report.stale import label_stale
    from .stale import current_definitions, split_stale

    split = split_stale(frame, current_definitions(results))
    n = split.stale_cells
    if not n:
        return split.current, [], split.stale
    if include_stale:
        note = f"included {n} stale cells (made with settings no current suite definition gives them), " \
               "the method labelled by config: `<method> [cfg <hash>]`"
        return pd.concat([split.current, label_stale(split.stale)], ignore_index=True), [note], split.stale
    if split.current.empty:
        raise UsageError(f"every cell under {results} is stale ({n} cells made with settings no current suite "
                         "definition gives them); rerun the suites, or `report --all` to report them labelled "
                         "by config")
    return split.current, [f"left out {n} stale cells (made with settings no current suite definition gives "
                           "them); `report --all` includes them, labelled by config"], split.stale


def cmd_parity(args: argparse.Namespace) -> int:
    from .parity import parity_frame, parity_markdown

    try:
        frame = parity_frame(args.results, args.suite)
    except (ValueError, FileNotFoundError) as err:
        raise UsageError(str(err)) from None
    print(parity_markdown(frame))
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from .calibrate import CalibrationPlan, DecodePlan, calibrate, calibrate_decode, default_entries
    from .checks import parse_device, usable_device
    from .cost import calibration_path, save_calibration, suite_decode_needs, suite_resolutions

    suite = load_suite(args.suite)
    check_names(BACKBONES, args.backbones)
    check_names(DATASETS, args.datasets)
    outside = sorted(set(args.datasets or ()) - set(suite.datasets))
    if outside:
        raise UsageError(f"--datasets {' '.join(outside)}: not in suite {suite.name!r} (its datasets: "
                         f"{', '.join(suite.datasets)})")
    backbones = args.backbones or sorted({*suite.backbones, *(suite.distill_backbones or [])})
    try:
        device = usable_device(parse_device(args.device))
        plan = CalibrationPlan(default_entries(backbones, args.resolutions, lambda b: suite_resolutions(suite, b)),
                               batch=args.batch, warmup=args.warmup, iterations=args.iterations)
        decode = DecodePlan(args.decode_rows, args.decode_warmup) if args.decode_rows != 0 else None
    except (ValueError, RuntimeError) as err:
        raise UsageError(str(err)) from None
    path = calibration_path(device)
    table, skipped = calibrate(plan, device, path, suite.backbone_options)
    if not table.table or len(skipped) == len(set(backbones)):
        raise UsageError(f"nothing measured: the weights of {', '.join(backbones)} are not on this machine; "
                         "download them, or calibrate a backbone that is here (`list backbones`)")
    if decode is not None:
        needs = [n for n in suite_decode_needs(suite) if args.datasets is None or n.dataset in args.datasets]
        calibrate_decode(table, needs, decode)
    save_calibration(table, path)
    print(f"wrote {path}")
    return 0


def eval_plan(args: argparse.Namespace) -> Any:
    """The checked ``eval`` request (names, seeds, --like); nothing read or written yet."""
    from .external import NAME, EvalPlan, default_name

    check_names(DATASETS, [args.dataset])
    check_names(BACKBONES, args.backbones)
    if args.protocol not in PROBES:
        raise UsageError(PROBES.unknown_message(args.protocol))
    if args.seeds < 1:
        raise UsageError("--seeds must be at least 1")
    if args.like is not None and args.like not in SUITES:
        raise UsageError(SUITES.unknown_message(args.like))
    like: Suite | None = SUITES.get(args.like) if args.like else None
    name = args.name if args.name is not None else default_name(args.images)
    if not NAME.fullmatch(name):
        raise UsageError(f"--name {name!r}: use letters, digits, _ . - (it becomes the method external:{name})")
    return EvalPlan(name, args.dataset, tuple(dict.fromkeys(args.backbones)), args.protocol, args.seeds,
                    dict(like.protocol_options.get(args.protocol, {})) if like else {},
                    {b: dict(o) for b, o in like.backbone_options.items()} if like else {})


def cmd_eval(args: argparse.Namespace) -> int:
    from .checks import output_directory, parse_device, usable_device
    from .external import run_eval

    plan = eval_plan(args)
    if not args.images.exists():
        raise UsageError(f"--images {args.images}: no such file or folder")
    try:
        device = usable_device(parse_device(args.device))
        output_directory(args.results, "--results", create=False)
        ran, skipped, failed = run_eval(plan, args.images, args.results, device, progress=not args.no_progress,
                                        before_write=lambda: output_directory(args.results, "--results"))
    except (ValueError, RuntimeError, FileNotFoundError) as err:  # the set, the data, a backbone's weights
        raise UsageError(str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__) from None
    print(f"external:{plan.name} on {plan.dataset}: {ran} cells run, {skipped} skipped (already done), "
          f"{len(failed)} failed. Results: {args.results}")
    for line in failed:
        print(f"  FAILED {line}", file=sys.stderr)
    return EXIT_FAILED_CELLS if failed else 0


def cmd_list(args: argparse.Namespace) -> int:
    registry = LISTABLE[args.what]
    names = registry.names()
    width = max((len(n) for n in names), default=0)
    for name in names:
        print(f"{name:<{width}}  {registry.describe(name)}")
    return 0


COMMANDS = {"run": cmd_run, "report": cmd_report, "parity": cmd_parity, "list": cmd_list}
COMMANDS["calibrate"] = cmd_calibrate
COMMANDS["eval"] = cmd_eval
COMMANDS["status"] = cmd_status


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return COMMANDS[args.command](args)
    except (UsageError, RegistryError) as err:
        for line in str(err).splitlines() or [""]:
            print(f"error: {line}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # finished cells are on disk; a rerun continues from there
        print("\ninterrupted; run the same command again to continue", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
