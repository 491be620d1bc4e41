"""Bad suite files, references and external sets: each is one line `error: ...` on stderr, exit status 2,
and nothing written (the results directory is never made)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from benchmark.cli import EXIT_USAGE, main
from tests.test_refs import TINY, tiny_timm_weights

pytestmark = pytest.mark.usefixtures("one_thread")

SUITE = '''name = "mine"
datasets = ["smoke_tiny"]
methods = ["centroids"]
backbones = ["tiny_vit"]
seeds = 1
protocol = "fast"
'''


def suite_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "suite.toml"
    path.write_text(text)
    return str(path)


def smoke_set(tmp_path: Path, **tensors: torch.Tensor) -> str:
    path = tmp_path / "set.safetensors"
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    return str(path)


def run_args(suite: str) -> list[str]:
    return ["run", "--suite", suite]


def eval_args(images: str, backbone: str = "tiny_vit") -> list[str]:
    return ["eval", "--images", images, "--dataset", "smoke_tiny", "--backbones", backbone, "--seeds", "1"]


# each case: (id, builder(tmp_path) -> argv, what the one-line message must say)
CASES = [
    ("unknown key", lambda t: run_args(suite_file(t, SUITE + "sedes = 3\n")),
     "suite.toml: key 'sedes': unknown key. Did you mean: seeds"),
    ("wrong type", lambda t: run_args(suite_file(t, SUITE.replace("seeds = 1", 'seeds = "two"'))),
     "key 'seeds': must be an integer, not a string ('two')"),
    ("unknown method", lambda t: run_args(suite_file(t, SUITE.replace('"centroids"', '"centroid"'))),
     "key 'methods': unknown method 'centroid'. Did you mean: centroids"),
    ("unknown method option", lambda t: run_args(suite_file(t, SUITE.replace('"centroids"', '"lgm"')
                                                           + "[method_options.lgm]\nstepz = 3\n")),
     "key 'method_options.lgm': bad options for method 'lgm'"),
    ("options for a backbone not in the suite", lambda t: run_args(suite_file(
        t, SUITE + '[backbone_options.effnet_lite0]\ninput_size = 64\n')),
     "key 'backbone_options.effnet_lite0': 'effnet_lite0' is not one of this suite's backbones (tiny_vit)"),
    ("missing folder", lambda t: run_args(suite_file(t, SUITE.replace('"smoke_tiny"', f'"folder:{t}/nope"'))),
     "dataset 'folder:{t}/nope': directory not found: {t}/nope"),
    ("not TOML", lambda t: run_args(suite_file(t, "name = \n")), "suite.toml: not valid TOML"),
    ("built-in name", lambda t: run_args(suite_file(t, SUITE.replace('"mine"', '"smoke"'))),
     "key 'name': 'smoke' is a built-in suite name; pick another name"),
    ("suite file not found", lambda t: run_args(f"{t}/absent.toml"), "suite file not found"),
    ("unknown prefix", lambda t: ["run", "--suite", "smoke", "--backbones", "timn:resnet18"],
     "unknown backbone reference prefix 'timn:' in 'timn:resnet18'. Did you mean timm:?"),
    ("bad @size", lambda t: ["run", "--suite", "smoke", "--backbones", f"timm:{TINY}@3x"],
     "bad input size '@3x'; write a positive whole number of pixels"),
    ("size not a patch multiple", lambda t: run_args(suite_file(t, SUITE.replace('"tiny_vit"', f'"timm:{TINY}@40"'))),
     "input_size must be a multiple of the patch size 16"),
    ("pickle that is not weights-only", lambda t: [
        "run", "--suite", "smoke", "--backbones", f"timm:{TINY}@32,weights={pickled(t)}"],
     "is not a weights-only torch file (it pickles other objects: torch.nn.modules.linear.Linear"),
    ("weights with wrong keys", lambda t: ["run", "--suite", "smoke", "--backbones",
                                          f"timm:{TINY}@32,weights={wrong_keys(t)}"],
     "weight file wrong.safetensors does not load strictly; missing: norm.bias, norm.weight; unexpected: extra"),
    ("eval: label count mismatch", lambda t: eval_args(smoke_set(t, images=torch.rand(4, 3, 8, 8),
                                                                 labels=torch.arange(3))),
     "holds 4 images but 3 labels; there must be one label per image"),
    ("eval: labels out of range", lambda t: eval_args(smoke_set(t, images=torch.rand(4, 3, 8, 8),
                                                                labels=torch.tensor([0, 1, 2, 9]))),
     "labels range over [0, 9] but dataset 'smoke_tiny' has 4 classes"),
    ("eval: a class without images", lambda t: eval_args(smoke_set(t, images=torch.rand(3, 3, 8, 8),
                                                                   labels=torch.tensor([0, 1, 2]))),
     "no images of 1 of the 4 classes of 'smoke_tiny' ('Bag')"),
    ("eval: images outside [0, 1]", lambda t: eval_args(smoke_set(t, images=torch.rand(4, 3, 8, 8) * 2 - 1,
                                                                  labels=torch.arange(4))),
     "they must be in [0, 1]"),
    ("eval: wrong keys", lambda t: eval_args(smoke_set(t, x=torch.rand(4, 3, 8, 8), y=torch.arange(4))),
     "holds the keys x, y; it needs 'images'"),
    ("eval: pickled set", lambda t: eval_args(pickled(t)), "is not a weights-only torch file"),
    ("empty ipc list", lambda t: run_args(suite_file(t, SUITE + "ipc = []\n")),
     "key 'ipc': is an empty list; give images per class"),
    ("exclude value of the wrong type", lambda t: run_args(suite_file(t, SUITE + "[[exclude]]\nmethod = 3\n")),
     "key 'exclude[0].method': must be a string"),
    ("eval: empty set", lambda t: eval_args(smoke_set(t, images=torch.rand(0, 3, 8, 8),
                                                      labels=torch.zeros(0, dtype=torch.int64))),
     "holds no images (its 'labels' are empty)"),
    ("backbone option: bad normalization", lambda t: run_args(suite_file(
        t, SUITE + '[backbone_options.tiny_vit]\nnormalization = "nonsense"\n')),
     "key 'backbone_options.tiny_vit': normalization must be one of ('imagenet', 'native'), not 'nonsense'"),
    ("backbone option: size off the patch grid", lambda t: run_args(suite_file(
        t, SUITE + '[backbone_options.tiny_vit]\ninput_size = 30\n')),
     "key 'backbone_options.tiny_vit':"),
    ("backbone option: pos_embed for a backbone without one", lambda t: run_args(suite_file(
        t, SUITE + '[backbone_options.tiny_vit]\npos_embed = "timm"\n')),
     "backbone 'tiny_vit' has no option 'pos_embed'"),
    ("eval: unknown class folder", lambda t: eval_args(class_folders(t, ["Bag", "Sandal"])),
     "class folder(s) 'Sandal' name no class of the dataset"),
    ("eval: no such file", lambda t: eval_args(f"{t}/none.safetensors"), "none.safetensors: no such file or folder"),
    ("eval: unknown backbone", lambda t: eval_args(smoke_set(t, images=torch.rand(4, 3, 8, 8), labels=torch.arange(4)),
                                                   backbone="tiny_vt"),
     "unknown backbone 'tiny_vt'. Did you mean: tiny_vit"),
]


def pickled(tmp_path: Path) -> Path:
    path = tmp_path / "model.pt"
    torch.save({"model": torch.nn.Linear(2, 2)}, path)
    return path


def wrong_keys(tmp_path: Path) -> Path:
    from safetensors.torch import load_file

    good = tiny_timm_weights(tmp_path / "good.safetensors")
    state = load_file(str(good))
    state = {k: v for k, v in state.items() if not k.startswith("norm.")} | {"extra": torch.zeros(1)}
    save_file(state, str(tmp_path / "wrong.safetensors"))
    return tmp_path / "wrong.safetensors"


def class_folders(tmp_path: Path, names: list[str]) -> Path:
    from PIL import Image

    for name in names:
        (tmp_path / "set" / name).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "set" / name / "a.png")
    return tmp_path / "set"


@pytest.mark.parametrize(("build", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path: Path, capsys, build, expected: str) -> None:
    argv = [str(a) for a in build(tmp_path)]
    results = tmp_path / "results"
    capsys.readouterr()
    assert main([*argv, "--results", str(results)]) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert expected.replace("{t}", str(tmp_path)) in err, err
    assert not results.exists()
