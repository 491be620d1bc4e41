"""``micro_batch``: the LGM step in chunks of at most m images gives the one-batch step's images.

CPU, fp32, 10 classes x K = 4 (40 synthetic views and 40 real images a step), m = 7 (six chunks, the last
of 5), through the toy conv backbone and the project's tiny random ViT.
"""

from __future__ import annotations

import json

import pytest
import torch
from datasets import ClassLabel, Dataset, Features
from datasets import Image as ImageFeature
from PIL import Image
from test_lgm import TOY_INPUT, toy_backbone, toy_config

from benchmark.registry import BACKBONES, METHODS
from benchmark.types import LabeledImages
from method import checkpoint
from method.config import LGMConfig, build_config
from method.distill import Distiller

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES, K, M = 10, 4, 7
TOLERANCE = 1e-5


def ten_classes(per_class: int = 5, size: int = 12) -> LabeledImages:
    """10 classes of noisy flat colours (a random colour per class)."""
    gen = torch.Generator().manual_seed(321)
    colours = torch.randint(30, 226, (CLASSES, 3), generator=gen)
    images, labels = [], []
    for c in range(CLASSES):
        for _ in range(per_class):
            noise = torch.randint(-30, 31, (size, size, 3), generator=gen)
            images.append(Image.fromarray((colours[c] + noise).clamp(0, 255).to(torch.uint8).numpy()))
            labels.append(c)
    names = [f"class{c}" for c in range(CLASSES)]
    ds = Dataset.from_dict({"image": images, "label": labels},
                           features=Features({"image": ImageFeature(), "label": ClassLabel(names=names)}))
    return LabeledImages(name="toy10", split="train", dataset=ds, class_names=names, fingerprint="toy10-v1")


def tiny_vit():
    spec = BACKBONES.get("tiny_vit")
    if not spec.weights_available():
        pytest.skip("tiny_vit is not available offline")
    return spec.build(input_size=32)


def run(cfg: LGMConfig, make_backbone, train: LabeledImages, **kw) -> tuple[torch.Tensor, Distiller]:
    d = Distiller(cfg, train, make_backbone(), ipc=1, seed=11, **kw)
    return d.run(), d


# steps=3 with schedule "exact": 3 updates; a new pyramid level before each, so the decode's graph changes
@pytest.mark.parametrize("backbone", ["toy", "tiny_vit"])
@pytest.mark.parametrize("centre", [False, True])
def test_micro_batch_gives_the_one_batch_images(backbone, centre):
    train = ten_classes()
    make, size = (toy_backbone, TOY_INPUT) if backbone == "toy" else (tiny_vit, 32)
    base = dict(steps=3, schedule="exact", augs_per_batch=K, grow_every=1, syn_res=None, crop_res=None,
                checkpoint_every=0, lr=0.05, center_features=centre)
    whole, d_whole = run(build_config("paper", base).resolve(size), make, train)
    chunked, d_chunked = run(build_config("paper", {**base, "micro_batch": M}).resolve(size), make, train)
    diff = float((whole - chunked).abs().max())
    print(f"micro_batch={M} vs None, {backbone}, centre={centre}: max abs diff {diff:.3g}")
    assert d_whole.micro_batch is None and d_chunked.micro_batch == M
    assert diff <= TOLERANCE, diff
    start, _ = run(build_config("paper", {**base, "steps": 0}).resolve(size), make, train)
    assert float((whole - start).abs().max()) > 0.05  # the three updates moved the images
    assert [round(v, 5) for v in d_whole.loss_curve] == [round(v, 5) for v in d_chunked.loss_curve]
    # a chunk as large as the batch is the one-batch step itself, bit for bit
    same, _ = run(build_config("paper", {**base, "micro_batch": CLASSES * K}).resolve(size), make, train)
    assert torch.equal(same, whole)


def test_micro_batch_chunks_the_real_bank_too():
    train = ten_classes(per_class=3)
    base = dict(steps=2, schedule="exact", augs_per_batch=K, real_bank=2, center_features=True, lr=0.05)
    whole, d = run(toy_config(**base), toy_backbone, train)
    chunked, dc = run(toy_config(**base, micro_batch=M), toy_backbone, train)
    assert float((d.bank[0] - dc.bank[0]).abs().max()) <= TOLERANCE
    assert float((whole - chunked).abs().max()) <= TOLERANCE


class Killed(RuntimeError):
    pass


def test_killed_run_with_micro_batch_resumes_to_identical_images(tmp_path):
    train = ten_classes()
    cfg = toy_config(steps=6, grow_every=2, augs_per_batch=K, checkpoint_every=3, micro_batch=M)
    full_dir, killed_dir = tmp_path / "full", tmp_path / "killed"
    reference = Distiller(cfg, train, toy_backbone(), ipc=1, seed=7, artifact_dir=full_dir).run()

    backbone = toy_backbone()
    dying_run = Distiller(cfg, train, backbone, ipc=1, seed=7, artifact_dir=killed_dir)

    def dying(module, args):
        if dying_run.step_done == 5:  # inside update 5 (0-indexed): the last checkpoint is step 3
            raise Killed

    hook = backbone.register_forward_pre_hook(dying)
    with pytest.raises(Killed):
        dying_run.run()
    hook.remove()
    assert torch.load(killed_dir / checkpoint.FILENAME, weights_only=True)["state"]["step"] == 3

    resumed = Distiller(cfg, train, toy_backbone(), ipc=1, seed=7, artifact_dir=killed_dir)
    images = resumed.run()
    assert resumed.resumed_from == 3 and resumed.step_done == 7
    assert torch.equal(images, reference)
    # micro_batch changes no number, so a checkpoint made without it resumes with it (and back)
    plain = toy_config(steps=6, grow_every=2, augs_per_batch=K, checkpoint_every=3)
    assert Distiller(plain, train, toy_backbone(), ipc=1, seed=7, artifact_dir=killed_dir).try_resume()


@pytest.mark.parametrize("bad", [0, -3, "banana", 2.5, True])
def test_config_rejects_bad_micro_batch(bad):
    with pytest.raises(ValueError, match="micro_batch must be None .*positive integer.*'auto'"):
        LGMConfig(micro_batch=bad)


def test_micro_batch_values_metadata_and_identity(tmp_path):
    assert LGMConfig().micro_batch is None
    assert LGMConfig(micro_batch=5).micro_batch == 5 and LGMConfig(micro_batch="auto").micro_batch == "auto"
    assert build_config("paper", {"micro_batch": "12"}).micro_batch == 12  # as the command line gives it
    # it cannot change a number, so it is not part of a cell's identity (config hash) ...
    plain, chunked = METHODS.get("lgm")(preset="smoke"), METHODS.get("lgm")(preset="smoke", micro_batch=3)
    assert "micro_batch" not in plain.config() and plain.config() == chunked.config()
    # ... but the metadata records the chunk size used
    from test_lgm import ctx_for, toy_train
    synset = chunked.synthesize(toy_train(), toy_backbone(), 1, 0, ctx_for(tmp_path))
    meta = json.loads(json.dumps(synset.metadata))
    assert meta["micro_batch"] == 3 and meta["config"]["micro_batch"] == 3
    # "auto" on a CPU is one pass
    d = Distiller(toy_config(steps=1, micro_batch="auto"), toy_train(), toy_backbone(), ipc=1, seed=0)
    d.run()
    assert d.micro_batch is None and d.metadata()["micro_batch"] is None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_auto_micro_batch_on_cuda_is_exact_in_fp32():
    train = ten_classes()
    base = dict(steps=3, schedule="exact", augs_per_batch=K, grow_every=1, precision="fp32")
    whole = Distiller(toy_config(**base), train, toy_backbone(), ipc=1, seed=3, device="cuda").run()
    d = Distiller(toy_config(**base, micro_batch="auto"), train, toy_backbone(), ipc=1, seed=3, device="cuda")
    auto = d.run()
    assert isinstance(d.micro_batch, int) and d.micro_batch >= 1
    forced = Distiller(toy_config(**base, micro_batch=M), train, toy_backbone(), ipc=1, seed=3, device="cuda").run()
    assert float((whole - auto).abs().max()) <= TOLERANCE
    assert float((whole - forced).abs().max()) <= 1e-4  # CUDA kernels may differ by batch shape
