"""The objectives of ``method/`` (``lgm``, ``dm``, ``krr``) against references written here, and the shared
loop's guarantees for each: one-pass = chunks (``micro_batch``), resume = uninterrupted, an out-of-memory
update retried with half the chunk = uninterrupted.

Toy backbones and toy datasets only; the file runs in well under a minute on a CPU.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from sklearn.linear_model import Ridge
from test_lgm import TOY_INPUT, ctx_for, toy_backbone, toy_train
from test_microbatch import ten_classes

from benchmark import preemption
from benchmark.registry import METHODS
from method import checkpoint
from method.config import build
from method.distill import Distiller, is_out_of_memory
from method.dm import DM_PRESETS, DMConfig, DMObjective, class_means
from method.gradients import random_head
from method.krr import KRR_PRESETS, KRRConfig, KRRObjective, label_targets, ridge_head, ridge_lambda
from method.lgm import LGMObjective
from method.objective import objective_for

pytestmark = pytest.mark.usefixtures("one_thread")

OBJECTIVES = {"lgm": LGMObjective, "dm": DMObjective, "krr": KRRObjective}


def objective(name: str, num_classes: int, **config) -> object:
    """An objective outside any loop: a stand-in loop with just what the objectives read."""
    cls = OBJECTIVES[name]
    loop = SimpleNamespace(num_classes=num_classes, device=torch.device("cpu"),
                           dev_gen=torch.Generator().manual_seed(0), backbone=SimpleNamespace(feature_dim=16))
    return cls(cls.Config(**config), loop)


def pixels_and_features(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.nn.Module]:
    """Pixels (a leaf) and their toy-backbone features, so a loss can be differentiated into pixels."""
    x = torch.rand(n, 3, TOY_INPUT, TOY_INPUT, generator=torch.Generator().manual_seed(seed)).requires_grad_(True)
    net = toy_backbone(seed=2)
    return x, net(x), net


def real_features(n: int, seed: int, classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 16, generator=gen) + 3.0, torch.arange(n) % classes


def toy_problem(seed: int, classes: int = 3):
    """12 synthetic pixels (a leaf), their features and labels, and 30 real features with labels."""
    x, z, _ = pixels_and_features(12, seed=seed)
    zr, yr = real_features(30, seed=seed + 1, classes=classes)
    return x, z, torch.arange(12) % classes, zr, yr


# -- DM ---------------------------------------------------------------------------------------------

def plain_dm_loss(z_real, y_real, z_syn, y_syn, classes):
    """Zhao & Bilen's loss written out: per class, the squared distance of the two mean embeddings."""
    total = torch.zeros(())
    for c in range(classes):
        if (y_real == c).any():
            total = total + torch.sum((z_real[y_real == c].mean(0) - z_syn[y_syn == c].mean(0)) ** 2)
    return total


def test_dm_loss_and_pixel_gradient_equal_the_plain_per_class_loop():
    classes = 3
    x, z, y, zr, yr = toy_problem(seed=1, classes=classes)
    dm = objective("dm", classes)
    ours = dm.loss(z, y, dm.target(lambda: (zr, yr)))
    (g_ours,) = torch.autograd.grad(ours, x, retain_graph=True)
    ref = plain_dm_loss(zr, yr, z, y, classes)
    (g_ref,) = torch.autograd.grad(ref, x)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-4, atol=1e-7)
    assert ours.item() > 1.0 and g_ours.abs().sum() > 0


def test_dm_loss_is_zero_when_the_class_means_agree_and_skips_absent_classes():
    classes = 3
    zr, yr = real_features(30, seed=3, classes=classes)
    means, present = class_means(zr, yr, classes)
    assert present.all()
    gen = torch.Generator().manual_seed(4)
    # two synthetic rows per class, symmetric about the real class mean: same means, other rows
    offset = torch.randn(classes, 16, generator=gen)
    z_syn = torch.cat([means + offset, means - offset])
    y_syn = torch.arange(classes).repeat(2)
    dm = objective("dm", classes)
    target = dm.target(lambda: (zr, yr))
    assert dm.loss(z_syn, y_syn, target).item() == pytest.approx(0.0, abs=1e-8)
    assert dm.loss(z_syn + 0.1, y_syn, target).item() == pytest.approx(classes * 16 * 0.01, rel=1e-4)
    # a class missing from the real batch adds nothing, however far its synthetic mean is
    keep = yr != 2
    far = z_syn.clone()
    far[y_syn == 2] += 100.0
    partial = dm.target(lambda: (zr[keep], yr[keep]))
    assert partial.present.tolist() == [True, True, False]
    assert dm.loss(far, y_syn, partial).item() == pytest.approx(0.0, abs=1e-6)


def test_dm_config_keeps_its_paper_values_and_refuses_centring():
    cfg = DMConfig()
    assert (cfg.augs_per_batch, cfg.real_sampling, cfg.init, cfg.real_per_class) == (1, "balanced", "real", 256)
    assert cfg.real_images_per_class(ipc=10) == 256
    assert DMConfig(real_per_class=None, augs_per_batch=3).real_images_per_class(ipc=2) == 6
    with pytest.raises(ValueError, match="bad DM config: center_features cannot change DM's loss"):
        DMConfig(center_features=True)
    with pytest.raises(ValueError, match="real_per_class must be a positive integer"):
        DMConfig(real_per_class=0)


# -- KRR --------------------------------------------------------------------------------------------

def lstsq_head(z, targets, ridge):
    """The ridge weights as a least-squares problem: [Z; sqrt(lambda) I] W = [Y; 0] (autograd-able)."""
    lam = ridge * torch.trace(z @ z.t()) / z.shape[0]
    f = z.shape[1]
    a = torch.cat([z, lam.sqrt() * torch.eye(f, dtype=z.dtype)])
    b = torch.cat([targets, torch.zeros(f, targets.shape[1], dtype=z.dtype)])
    return torch.linalg.lstsq(a, b).solution


@pytest.mark.parametrize("rows", [6, 40])  # fewer rows than features (the kernel system), more (the Gram one)
@pytest.mark.parametrize("ridge", [1e-6, 1e-2, 1.0])
def test_ridge_head_is_the_least_squares_and_sklearn_solution(rows, ridge):
    gen = torch.Generator().manual_seed(rows)
    z = torch.randn(rows, 16, generator=gen, dtype=torch.float64)
    targets = label_targets(torch.arange(rows) % 4, 4, "centered")
    head = ridge_head(z, targets, ridge)
    assert head.shape == (16, 4)
    torch.testing.assert_close(head, lstsq_head(z, targets, ridge), rtol=1e-6, atol=1e-8)
    lam = float(ridge_lambda(z, ridge))
    assert lam == pytest.approx(ridge * float(torch.trace(z @ z.t())) / rows)
    sk = Ridge(alpha=lam, fit_intercept=False).fit(z.numpy(), targets.numpy())
    queries = torch.randn(25, 16, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(queries @ head, torch.from_numpy(sk.predict(queries.numpy())), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("targets", ["centered", "onehot"])
@pytest.mark.parametrize("centre", [False, True])
def test_krr_loss_and_pixel_gradient_equal_a_plain_lstsq_implementation(targets, centre):
    classes = 3
    x, z, y, zr, yr = toy_problem(seed=5, classes=classes)
    krr = objective("krr", classes, ridge=1e-3, targets=targets, center_features=centre)
    ours = krr.loss(z, y, krr.target(lambda: (zr, yr)))
    (g_ours,) = torch.autograd.grad(ours, x, retain_graph=True)

    mu = zr.mean(0) if centre else torch.zeros(16)
    onehot = lambda labels: F.one_hot(labels, classes).double() - (1 / classes if targets == "centered" else 0)
    head = lstsq_head((z - mu).double(), onehot(y), 1e-3)
    ref = (((zr - mu).double() @ head - onehot(yr)) ** 2).mean()
    (g_ref,) = torch.autograd.grad(ref, x)
    torch.testing.assert_close(ours.double(), ref, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(g_ours, g_ref.float(), rtol=1e-3, atol=1e-7)
    assert g_ours.abs().sum() > 0


def test_krr_predictions_equal_sklearn_ridge_for_the_same_features_and_lambda():
    classes = 4
    gen = torch.Generator().manual_seed(7)
    zs, ys = torch.randn(20, 16, generator=gen), torch.arange(20) % classes
    zt, yt = torch.randn(50, 16, generator=gen), torch.arange(50) % classes
    krr = objective("krr", classes, ridge=1e-2)
    target = krr.target(lambda: (zt, yt))
    loss = krr.loss(zs, ys, target)
    lam = float(ridge_lambda(zs.double(), 1e-2))
    sk = Ridge(alpha=lam, fit_intercept=False).fit(zs.double().numpy(), label_targets(ys, classes, "centered").numpy())
    predictions = sk.predict(zt.double().numpy())
    expected = ((predictions - label_targets(yt, classes, "centered").numpy()) ** 2).mean()
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_krr_config_checks_its_options():
    assert (KRRConfig().ridge, KRRConfig().targets, KRRConfig().real_per_class) == (1e-6, "centered", None)
    with pytest.raises(ValueError, match="bad KRR config: ridge must be > 0"):
        KRRConfig(ridge=0.0)
    with pytest.raises(ValueError, match="targets must be 'centered' or 'onehot'"):
        KRRConfig(targets="soft")


# -- LGM through the objective interface ------------------------------------------------------------

def test_lgm_objective_draws_its_head_first_then_matches_gradients():
    classes = 3
    x, z, y, zr, yr = toy_problem(seed=8, classes=classes)
    lgm = objective("lgm", classes)
    order = []
    target = lgm.target(lambda: order.append("real") or (zr, yr))
    weight, bias = random_head(classes, 16, 0.01, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert order == ["real"] and torch.equal(target.weight, weight)  # the head came from the loop's dev_gen
    ours = lgm.loss(z, y, target)
    w = weight.clone().requires_grad_(True)
    b = bias.clone().requires_grad_(True)
    g_real = torch.cat([g.flatten() for g in torch.autograd.grad(F.cross_entropy(zr @ w.t() + b, yr), (w, b))])
    g_syn = torch.cat([g.flatten() for g in torch.autograd.grad(F.cross_entropy(z @ w.t() + b, y), (w, b),
                                                                 create_graph=True)])
    ref = 1 - F.cosine_similarity(g_real, g_syn, dim=0)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch.autograd.grad(ours, x, retain_graph=True)[0], torch.autograd.grad(ref, x)[0],
                               rtol=1e-3, atol=1e-8)


def test_each_config_type_names_its_objective():
    assert objective_for(DMConfig()) is DMObjective and objective_for(KRRConfig()) is KRRObjective
    with pytest.raises(TypeError, match="no objective"):
        objective_for(SimpleNamespace())


# -- the shared loop, for every objective -------------------------------------------------------------

def config(name: str, **changes):
    """A resolved toy config of objective ``name``: the loop's test settings, the objective's defaults."""
    cls = OBJECTIVES[name].Config
    base = dict(steps=3, augs_per_batch=3, grow_every=1, schedule="exact", syn_res=None, crop_res=None,
                checkpoint_every=0, lr=0.05)
    if name == "dm":
        base["real_per_class"] = 3
    if name == "krr":
        base["ridge"] = 1e-2
    return build(cls, {"t": {}}, "t", {**base, **changes}).resolve(TOY_INPUT)


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_micro_batch_chunks_give_the_one_pass_images_for_every_objective(name):
    train = ten_classes()
    whole = Distiller(config(name), train, toy_backbone(), ipc=1, seed=11)
    chunked = Distiller(config(name, micro_batch=7), train, toy_backbone(), ipc=1, seed=11)  # 5 chunks, one of 2
    a, b = whole.run(), chunked.run()
    assert whole.micro_batch is None and chunked.micro_batch == 7
    assert float((a - b).abs().max()) <= 1e-5
    start = Distiller(config(name, steps=0), train, toy_backbone(), ipc=1, seed=11).run()
    assert float((a - start).abs().max()) > 1e-3  # the updates moved the images
    for u, v in zip(whole.loss_curve, chunked.loss_curve, strict=True):
        assert u == pytest.approx(v, rel=1e-4, abs=1e-6)


class Killed(RuntimeError):
    pass


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_resume_from_a_checkpoint_gives_the_same_images_for_every_objective(name, tmp_path):
    train = ten_classes()
    cfg = config(name, steps=4, checkpoint_every=2)
    reference = Distiller(cfg, train, toy_backbone(), ipc=1, seed=7, artifact_dir=tmp_path / "full").run()
    backbone = toy_backbone()
    dying = Distiller(cfg, train, backbone, ipc=1, seed=7, artifact_dir=tmp_path / "killed")

    def die(module, args):
        if dying.step_done == 3:
            raise Killed

    hook = backbone.register_forward_pre_hook(die)
    with pytest.raises(Killed):
        dying.run()
    hook.remove()
    assert torch.load(tmp_path / "killed" / checkpoint.FILENAME, weights_only=True)["state"]["step"] == 2
    resumed = Distiller(cfg, train, toy_backbone(), ipc=1, seed=7, artifact_dir=tmp_path / "killed")
    assert torch.equal(resumed.run(), reference)
    assert resumed.resumed_from == 2 and len(resumed.loss_curve) == 4


@pytest.mark.parametrize("name", ["dm", "krr"])
def test_a_preemption_signal_stops_every_objective_at_its_step_and_resumes_to_the_same_images(name, tmp_path):
    train, cfg = ten_classes(), config(name, steps=4)  # no periodic checkpoint: only the signal's
    reference = Distiller(cfg, train, toy_backbone(), ipc=1, seed=7).run()
    before = {s: signal.getsignal(s) for s in preemption.SIGNALS}
    signal.signal(signal.SIGUSR2, lambda signum, frame: None)  # a stand-in for submitit's handler
    preemption.install(patience_s=60)
    try:
        stopped = Distiller(cfg, train, toy_backbone(), ipc=1, seed=7, artifact_dir=tmp_path,
                            on_step=lambda step, value: step == 2 and os.kill(os.getpid(), signal.SIGTERM))
        with pytest.raises(preemption.Preempted) as stop:
            stopped.run()
    finally:
        preemption.uninstall()
        for signum, handler in before.items():
            signal.signal(signum, handler)
    assert stop.value.where == "step 2"
    assert torch.load(tmp_path / checkpoint.FILENAME, weights_only=True)["state"]["step"] == 2
    resumed = Distiller(cfg, train, toy_backbone(), ipc=1, seed=7, artifact_dir=tmp_path)
    assert torch.equal(resumed.run(), reference) and resumed.resumed_from == 2


class HalfDM(DMObjective):
    """Another objective on DM's very config."""

    name = "half_dm"

    def loss(self, z, y, target):
        return 0.5 * super().loss(z, y, target)


def test_a_checkpoint_of_one_objective_is_not_resumed_by_another(tmp_path):
    train, cfg = ten_classes(), config("dm", steps=1, checkpoint_every=1)
    Distiller(cfg, train, toy_backbone(), ipc=1, seed=1, artifact_dir=tmp_path).run()
    other = Distiller(cfg, train, toy_backbone(), ipc=1, seed=1, artifact_dir=tmp_path, objective=HalfDM)
    assert not other.try_resume() and other.step_done == 0
    again = Distiller(cfg, train, toy_backbone(), ipc=1, seed=1, artifact_dir=tmp_path)
    assert again.try_resume() and again.step_done == 1


class FakeAllocator:
    """Raises CUDA's out-of-memory error when a backbone pass holds more than ``limit`` images, or on
    the first pass of update ``once_at``; counts what it refused."""

    def __init__(self, loop: Distiller, limit: int | None = None, once_at: int | None = None) -> None:
        self.loop, self.limit, self.once_at, self.refused = loop, limit, once_at, 0

    def __call__(self, module, args):
        (x,) = args
        if self.limit is not None and x.shape[0] > self.limit:
            self.refused += 1
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {x.shape[0]} images")
        if self.once_at is not None and self.loop.step_done == self.once_at:
            self.once_at = None
            self.refused += 1
            raise RuntimeError("CUDA error: out of memory")


@pytest.mark.parametrize("name", ["dm", "krr"])
def test_an_update_out_of_memory_halves_the_chunk_and_gives_the_same_images(name):
    train = ten_classes()  # 10 classes x K 3: 30 synthetic views a pass (and 30 real images)
    backbone = toy_backbone()
    d = Distiller(config(name), train, backbone, ipc=1, seed=3)
    fake = FakeAllocator(d, limit=12)
    backbone.register_forward_pre_hook(fake)
    images = d.run()
    # 30 -> 15 -> 7 images per pass: two halvings, both in the first update, which ran again from its draws
    assert d.micro_batch == 7 and fake.refused >= 2
    assert d.oom_retries == [{"update": 0, "micro_batch": 15}, {"update": 0, "micro_batch": 7}]
    meta = json.loads(json.dumps(d.metadata()))
    assert meta["micro_batch"] == 7 and meta["oom_retries"] == d.oom_retries
    uninterrupted = Distiller(config(name, micro_batch=7), train, toy_backbone(), ipc=1, seed=3)
    assert torch.equal(images, uninterrupted.run())
    assert d.loss_curve == uninterrupted.loss_curve


def test_a_later_update_out_of_memory_is_replayed_with_the_same_draws():
    train = ten_classes()
    backbone = toy_backbone()
    d = Distiller(config("lgm", micro_batch=8), train, backbone, ipc=1, seed=4)
    backbone.register_forward_pre_hook(FakeAllocator(d, once_at=2))
    images = d.run()
    assert d.oom_retries == [{"update": 2, "micro_batch": 4}] and d.micro_batch == 4
    one_pass = Distiller(config("lgm"), train, toy_backbone(), ipc=1, seed=4)
    assert float((images - one_pass.run()).abs().max()) <= 1e-5
    for u, v in zip(d.loss_curve, one_pass.loss_curve, strict=True):
        assert u == pytest.approx(v, rel=1e-4)


def decoding_in_step(loop: Distiller) -> list[int]:
    """Counts the real batches ``loop`` decodes when asked for them (not decoded ahead by a plan)."""
    calls: list[int] = []
    decode = loop.real.stream.decode
    loop.real.stream.decode = lambda requests: (calls.append(len(requests)), decode(requests))[1]
    return calls


@pytest.mark.parametrize(("name", "block"), [("lgm", None), ("dm", 8), ("krr", 8)])
def test_epoch_real_batches_are_decoded_ahead_block_by_block_with_the_in_step_result(name, block, monkeypatch,
                                                                                      caplog):
    monkeypatch.setenv("LGM_BENCH_PRELOAD_GB", "0")  # nothing preloaded: every update decodes its rows
    monkeypatch.setattr(OBJECTIVES[name], "real_block", block)  # 30 real images an update: 1 or 4 blocks
    train, cfg = ten_classes(), config(name, real_sampling="epoch")
    ahead = Distiller(cfg, train, toy_backbone(), ipc=1, seed=5)
    in_step = Distiller(cfg, train, toy_backbone(), ipc=1, seed=5)
    assert not ahead.real.preloaded
    in_step.plan_real = lambda: None  # the loop without its plan: each block decoded when asked for
    planned, plan = [], ahead.real.plan
    ahead.real.plan = lambda rows, start, stop: (planned.append((start, stop)), plan(rows, start, stop))[1]
    sync_ahead, sync_in_step = decoding_in_step(ahead), decoding_in_step(in_step)
    with caplog.at_level(logging.WARNING):
        images = ahead.run()
    assert planned == [(0, 3 if block is None else 12)]  # 3 updates x (1 or 4) blocks
    assert sync_ahead == [] and not caplog.records  # every block was the planned one
    assert torch.equal(images, in_step.run()) and ahead.loss_curve == in_step.loss_curve
    assert sync_in_step == ([30] * 3 if block is None else [8, 8, 8, 6] * 3)
    meta = ahead.metadata()
    assert meta["decode_workers"] == 0 and meta["real_wait_seconds"] >= 0.0 and meta["real_preloaded"] is False


def test_an_update_out_of_memory_plans_its_real_blocks_again(monkeypatch, caplog):
    monkeypatch.setenv("LGM_BENCH_PRELOAD_GB", "0")
    monkeypatch.setattr(DMObjective, "real_block", 8)
    train, backbone = ten_classes(), toy_backbone()
    d = Distiller(config("dm", real_sampling="epoch"), train, backbone, ipc=1, seed=3)
    backbone.register_forward_pre_hook(FakeAllocator(d, limit=12))  # the 30 synthetic views fail twice
    sync = decoding_in_step(d)
    with caplog.at_level(logging.WARNING):
        images = d.run()
    assert [r["micro_batch"] for r in d.oom_retries] == [15, 7]
    # the replayed update got its planned blocks again (no "other rows than planned" from method.real)
    assert sync == [] and [r.name for r in caplog.records] == ["method.distill"] * 2
    uninterrupted = Distiller(config("dm", real_sampling="epoch", micro_batch=7), train, toy_backbone(), ipc=1,
                              seed=3)
    assert torch.equal(images, uninterrupted.run())


def test_other_errors_are_not_taken_for_out_of_memory():
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory"))
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))
    train = ten_classes()
    backbone = toy_backbone()
    d = Distiller(config("krr"), train, backbone, ipc=1, seed=0)

    def broken(module, args):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    backbone.register_forward_pre_hook(broken)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        d.run()
    assert d.oom_retries == [] and d.micro_batch is None


def test_one_image_per_pass_that_still_runs_out_of_memory_raises():
    backbone = toy_backbone()
    d = Distiller(config("dm", micro_batch=1), ten_classes(), backbone, ipc=1, seed=0)
    backbone.register_forward_pre_hook(FakeAllocator(d, limit=0))
    with pytest.raises(torch.cuda.OutOfMemoryError):
        d.run()


def test_micro_batch_none_means_auto_and_off_means_one_pass():
    train = ten_classes()
    assert Distiller(config("dm"), train, toy_backbone(), ipc=1, seed=0).micro_batch is None  # CPU: one pass
    for setting in ("auto", "off", None):
        assert Distiller(config("krr", micro_batch=setting), train, toy_backbone(), ipc=1, seed=0).micro_batch is None
    from method.distill import initial_micro_batch

    cuda = torch.device("cuda")
    assert initial_micro_batch(None, cuda) == initial_micro_batch("auto", cuda) == "auto"
    assert initial_micro_batch("off", cuda) is None and initial_micro_batch(6, cuda) == 6


# -- the registered methods ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["dm", "krr"])
def test_registered_methods_record_their_preset_and_run_the_smoke_preset(name, tmp_path):
    presets = {"dm": DM_PRESETS, "krr": KRR_PRESETS}[name]
    assert {"paper", "embedded", "smoke"} <= set(presets)
    cls = METHODS.get(name)
    method = cls(preset="smoke")
    conf = method.config()
    assert conf["method"] == name and conf["preset"] == "smoke" and "micro_batch" not in conf
    assert cls.label(conf) == "smoke" and cls.label(cls(preset="paper").config()) is None
    assert cls.label(cls(preset="paper", steps=10).config()).startswith("paper+")
    assert cls(preset="smoke", micro_batch=3).config() == conf  # neutral
    synset = method.synthesize(toy_train(), toy_backbone(), 2, 0, ctx_for(tmp_path))
    meta = json.loads(json.dumps(synset.metadata))
    assert synset.images.shape == (6, 3, round(TOY_INPUT * 256 / 224), round(TOY_INPUT * 256 / 224))
    assert meta["objective"] == name and meta["method"] == name and meta["preset"] == "smoke"
    assert meta["steps_done"] == presets["smoke"]["steps"] + 1 and all(math.isfinite(v) for v in meta["loss_curve"])
    assert meta["seconds_per_step"] > 0 and (tmp_path / "grid.png").exists()
    with pytest.raises(ValueError, match=f"unknown {name.upper()} preset"):
        cls(preset="huge")
    with pytest.raises(ValueError, match="known options"):
        cls(head_std=0.1)  # LGM's option, not theirs


def test_auto_precision_on_cuda_is_each_objectives_and_fp32_on_a_cpu():
    from method.distill import resolve_precision

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    auto = {name: resolve_precision("auto", cuda, cls.cuda_autocast) for name, cls in OBJECTIVES.items()}
    assert auto == {"lgm": torch.float16, "dm": torch.bfloat16, "krr": torch.bfloat16}
    assert all(resolve_precision("auto", cpu, cls.cuda_autocast) == torch.float32 for cls in OBJECTIVES.values())
    assert resolve_precision("fp16", cuda, "bf16") == torch.float16  # an explicit precision wins
