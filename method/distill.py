"""The LGM loop (docs/method.md): match the gradient of a fresh random linear head on real and
synthetic batches through a frozen backbone, and update the synthetic images with Adam.

One step:
  1. grow the pyramid if due (and re-create the optimiser);
  2. a fresh head W ~ N(0, head_std^2), b = 0;
  3. ``ipc * K * C`` real images drawn uniformly from the whole split, each augmented once ->
     ``g_real`` (detached);
  4. the decoded synthetic set repeated K times, each copy augmented independently -> ``g_syn`` with
     the graph kept;
  5. loss = 1 - cos(g_real, g_syn) over the whole flattened [W; b]; Adam on the image parameters.
Options beyond the paper (off in its preset; see ``LGMConfig``) replace step 3 by a bank of real
features embedded once, centre both feature sets on the real mean, start from real images, or cap
the pyramid's finest level.
With ``micro_batch`` m (not in the paper) the same step runs in chunks of at most m images: a no-grad
pass gives the synthetic features z, hence g_syn, the loss and dLoss/dz (autograd on a leaf copy of z);
then each chunk is recomputed with the graph from the decoded images and back-propagates
``dLoss/dz_chunk``; the decoded images' gradient, summed over the chunks, goes through the decode once.
The augmentation of all N copies is drawn once, as in the one-batch step, and applied chunk by chunk, so
the result is that of the one-batch step up to float summation order (tests: <= 1e-5 after 3 steps).
On CUDA the backbone runs under fp16 autocast with the manual x1024 loss scale (bf16 optional, no
scale); on a CPU everything is fp32. A step whose scaled gradients are not finite is skipped (counted in
the metadata): the official code has no such guard, but it never fires unless fp16 overflows.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from benchmark.preemption import checkpoint_point
from benchmark.types import Backbone, LabeledImages

from . import checkpoint
from .augment import AugmentSpec, apply_augment, augment, draw_augment, resize
from .config import LGMConfig
from .gradients import head_gradient, matching_loss, random_head
from .pyramid import GrowthSchedule, PixelImages, PyramidImages, SyntheticImages
from .real import EpochBatches, RealImages, sample_balanced, sample_indices

log = logging.getLogger(__name__)

DEVICE_SEED_OFFSET = 0x9E3779B9  # the device generator's seed is derived from the run's seed
BANK_SEED_OFFSET = 0x5BD1E995  # the real bank has its own stream, so resuming rebuilds it identically
BANK_BATCH = 256


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    if precision == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[precision]


class Distiller:
    """One LGM run; ``cfg`` must be resolved (``LGMConfig.resolve``). ``run()`` returns the images."""

    def __init__(self, cfg: LGMConfig, train: LabeledImages, backbone: Backbone, ipc: int, seed: int,
                 device: torch.device | str = "cpu", artifact_dir: Path | None = None, progress: bool = False,
                 on_step: Callable[[int, float], None] | None = None, workers: int = 0) -> None:
        if cfg.syn_res is None or cfg.crop_res is None or cfg.real_res is None:
            raise ValueError("Distiller needs a resolved config (LGMConfig.resolve(input_size))")
        if ipc < 1:
            raise ValueError(f"ipc must be >= 1, got {ipc}")
        self.cfg = cfg
        self.train = train
        self.device = torch.device(device)
        self.backbone = backbone.to(self.device).eval().requires_grad_(False)
        self.ipc = ipc
        self.seed = seed
        self.num_classes = train.num_classes
        self.labels = torch.arange(self.num_classes).repeat_interleave(ipc).to(self.device)
        self.train_labels = train.labels
        self.class_rows = [torch.nonzero(self.train_labels == c).flatten() for c in range(self.num_classes)]
        self.dtype = resolve_precision(cfg.precision, self.device)
        self.loss_scale = cfg.loss_scale if self.dtype == torch.float16 else 1.0
        self.progress = progress
        self.on_step = on_step
        self.checkpoint_path = Path(artifact_dir) / checkpoint.FILENAME if artifact_dir is not None else None
        self.spec = AugmentSpec(out_size=cfg.crop_res, enabled=cfg.augment, flip_p=cfg.flip_p,
                                scale=cfg.crop_scale, ratio=cfg.crop_ratio, noise_p=cfg.noise_p,
                                noise_sigma=cfg.noise_sigma, noise_mean=cfg.noise_mean,
                                crop_fit=cfg.crop_fit)
        # all randomness of the run: small draws on the CPU, noise and heads on the device
        self.gen = torch.Generator().manual_seed(seed)
        self.dev_gen = torch.Generator(self.device).manual_seed((seed + DEVICE_SEED_OFFSET) % 2**63)
        self.real = RealImages(train, cfg.real_res, interpolation=backbone.identity.interpolation,
                               workers=workers)
        self.schedule = GrowthSchedule(cfg.steps, cfg.grow_every, cfg.schedule)
        self.epoch_batches = (EpochBatches(len(train), ipc * cfg.augs_per_batch * self.num_classes, seed)
                              if cfg.real_sampling == "epoch" and not cfg.real_bank else None)
        self.init_rows: list[int] | None = None
        self.images = self._create_images()
        self.optimizer = self._make_optimizer()
        self.step_done = 0
        self.loss_curve: list[float] = []
        self.skipped_steps = 0
        self.resumed_from: int | None = None
        self.seconds = 0.0  # wall time of the steps run by this process
        self.steps_timed = 0
        self.bank: tuple[Tensor, Tensor] | None = None  # (features, labels), built on first use
        self.bank_seconds = 0.0
        # images per backbone pass (None: all at once); "auto" is resolved on the first step
        self.micro_batch: int | None = None if cfg.micro_batch == "auto" and self.device.type != "cuda" \
            else cfg.micro_batch  # type: ignore[assignment]

    # -- parts ---------------------------------------------------------------------------------------
    def _create_images(self) -> SyntheticImages:
        n = self.num_classes * self.ipc
        images: SyntheticImages
        if self.cfg.parameterization == "pixel":
            images = PixelImages.create(n, self.cfg.syn_res, self.cfg.decorrelate, self.gen, self.device,
                                        self.cfg.init)
        else:
            images = PyramidImages.create(n, self.cfg.syn_res, self.cfg.decorrelate, self.gen, self.device,
                                          self.cfg.pyramid_start_res, self.cfg.init, self.cfg.pyramid_max_res)
        images.grayscale = self.cfg.grayscale
        if self.cfg.init == "real":  # ipc random training images per class, in label order
            rows = sample_balanced(self.class_rows, self.ipc, self.gen)
            self.init_rows = [int(r) for r in rows]
            images.start_from(self.real.batch(rows, self.gen, self.device))
        return images

    def _make_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.images.parameters(), lr=self.cfg.lr, weight_decay=0.0)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def _features(self, x: Tensor) -> Tensor:
        with self._autocast():
            return self.backbone(x)

    def _features_chunked(self, x: Tensor) -> Tensor:
        """``_features`` in passes of at most ``micro_batch`` images (call it without grad)."""
        m = self.micro_batch
        if not isinstance(m, int) or len(x) <= m:
            return self._features(x)
        return torch.cat([self._features(x[start:start + m]) for start in range(0, len(x), m)])

    def _synthetic_count(self) -> int:
        return self.labels.numel() * (self.cfg.augs_per_batch if self.cfg.augment else 1)

    def resolve_micro_batch(self) -> int | None:
        """The images per backbone pass; ``"auto"`` (CUDA only; on a CPU it is None) is resolved once from a
        probe: one pass with the graph over ``p`` unaugmented decoded images gives the peak memory per image,
        and m = (80% of the free memory - the step's augmented input batches) / that, in [1, N]."""
        if self.micro_batch != "auto":
            return self.micro_batch
        total = self._synthetic_count()
        crop = self.cfg.crop_res
        assert crop is not None
        p = min(total, 8)
        torch.cuda.synchronize(self.device)
        with torch.no_grad():
            decoded = self.images.decode()
        probe = resize(decoded[torch.arange(p, device=self.device) % len(decoded)], crop).requires_grad_(True)
        torch.cuda.reset_peak_memory_stats(self.device)
        before = torch.cuda.memory_allocated(self.device)
        self._features(probe).float().sum().backward()
        per_image = max(1, (torch.cuda.max_memory_allocated(self.device) - before) // p)
        del probe, decoded
        free, _ = torch.cuda.mem_get_info(self.device)
        free += torch.cuda.memory_reserved(self.device) - torch.cuda.memory_allocated(self.device)
        inputs = 3 * total * 3 * crop * crop * 4  # augmented real batch, synthetic noise draws, spare
        m = int(max(1, min(total, (0.8 * free - inputs) // per_image)))
        log.info("LGM micro_batch auto: %d images per pass (%.1f MiB per image, %.1f GiB free)", m,
                 per_image / 2**20, free / 2**30)
        self.micro_batch = m
        return m

    # -- identity and checkpoints --------------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        return {"config": self.cfg.to_dict(result_only=True), "backbone": _jsonable(self.backbone.identity.key()),
                "train_fingerprint": self.train.fingerprint, "num_train": len(self.train),
                "num_classes": self.num_classes, "ipc": self.ipc, "seed": self.seed,
                "device_type": self.device.type}

    def state(self) -> dict[str, Any]:
        return {"step": self.step_done, "levels": self.images.state(),
                "optimizer": self.optimizer.state_dict(), "loss_curve": list(self.loss_curve),
                "skipped_steps": self.skipped_steps, "gen": self.gen.get_state(),
                "dev_gen": self.dev_gen.get_state(), "seconds": self.seconds, "steps_timed": self.steps_timed}

    def save_checkpoint(self) -> None:
        if self.checkpoint_path is not None:
            checkpoint.save(self.checkpoint_path, self.identity(), self.state())

    def try_resume(self) -> bool:
        if self.checkpoint_path is None:
            return False
        found = checkpoint.load(self.checkpoint_path, self.identity())
        if found is None:
            return False
        levels = [t.to(self.device) for t in found["levels"]]
        self.images.levels = [t.detach().requires_grad_(True) for t in levels]
        self.optimizer = self._make_optimizer()
        self.optimizer.load_state_dict(found["optimizer"])
        self.step_done = int(found["step"])
        self.loss_curve = [float(v) for v in found["loss_curve"]]
        self.skipped_steps = int(found["skipped_steps"])
        self.gen.set_state(found["gen"])
        self.dev_gen.set_state(found["dev_gen"])
        self.seconds = float(found["seconds"])
        self.steps_timed = int(found["steps_timed"])
        checkpoint.set_global_rng_state(found["global_rng"])
        self.resumed_from = self.step_done
        log.info("LGM resumed from %s at step %d", self.checkpoint_path, self.step_done)
        return True

    # -- the step ------------------------------------------------------------------------------------
    def real_bank(self) -> tuple[Tensor, Tensor]:
        """Features of ``cfg.real_bank`` augmented views of the bank's rows, embedded once (no grad)."""
        if self.bank is None:
            started = time.perf_counter()
            seed = (self.seed + BANK_SEED_OFFSET) % 2**63
            gen = torch.Generator().manual_seed(seed)
            dev_gen = torch.Generator(self.device).manual_seed(seed)
            rows = torch.arange(len(self.train))
            if self.cfg.real_bank_rows is not None and self.cfg.real_bank_rows < len(rows):
                per_class = -(-self.cfg.real_bank_rows // self.num_classes)
                rows = sample_balanced(self.class_rows, per_class, gen).sort().values
            rows = rows.repeat(self.cfg.real_bank)
            feats = []
            with torch.no_grad():
                for start in range(0, len(rows), BANK_BATCH):
                    idx = rows[start:start + BANK_BATCH]
                    x = self.real.batch(idx, gen, self.device)
                    feats.append(self._features_chunked(augment(x, self.spec, gen, dev_gen)).float())
            self.bank = (torch.cat(feats), self.train_labels[rows].to(self.device))
            self.bank_seconds = time.perf_counter() - started
            log.info("LGM real bank: %d views embedded in %.1f s", len(rows), self.bank_seconds)
        return self.bank

    def real_gradient(self, weight: Tensor, bias: Tensor) -> tuple[Tensor, Tensor | None]:
        """g_real (detached) and the feature centre the synthetic features must share (or None)."""
        if self.cfg.real_bank:
            z, y = self.real_bank()
            return self._real_head_gradient(z, y, weight, bias)
        per_class = self.ipc * self.cfg.augs_per_batch
        if self.epoch_batches is not None:  # one real batch per update: the update index addresses it
            idx = self.epoch_batches(self.step_done)
        elif self.cfg.real_sampling == "balanced":
            idx = sample_balanced(self.class_rows, per_class, self.gen)
        else:
            idx = sample_indices(len(self.train), per_class * self.num_classes, self.gen)
        x = self.real.batch(idx, self.gen, self.device)
        y = self.train_labels[idx].to(self.device)
        with torch.no_grad():
            z = self._features_chunked(augment(x, self.spec, self.gen, self.dev_gen))
            return self._real_head_gradient(z, y, weight, bias)

    def _real_head_gradient(self, z: Tensor, y: Tensor, weight: Tensor,
                            bias: Tensor) -> tuple[Tensor, Tensor | None]:
        centre = z.float().mean(0) if self.cfg.center_features else None
        z = z if centre is None else z.float() - centre
        return head_gradient(z, y, weight, bias).detach(), centre

    def synthetic_gradient(self, weight: Tensor, bias: Tensor, centre: Tensor | None = None) -> Tensor:
        # without augmentation the K copies would be identical: one copy gives the same gradient
        copies = self.cfg.augs_per_batch if self.cfg.augment else 1
        x = self.images.decode().repeat(copies, 1, 1, 1)
        y = self.labels.repeat(copies)
        z = self._features(augment(x, self.spec, self.gen, self.dev_gen))
        return head_gradient(z if centre is None else z.float() - centre, y, weight, bias)

    def chunked_backward(self, g_real: Tensor, weight: Tensor, bias: Tensor, centre: Tensor | None,
                         m: int) -> Tensor:
        """The loss of ``synthetic_gradient`` + ``matching_loss``, and its scaled backward into the image
        parameters, with at most ``m`` images per backbone pass. Returns the (detached) loss."""
        copies = self.cfg.augs_per_batch if self.cfg.augment else 1
        decoded = self.images.decode()
        n = decoded.shape[0]
        total = n * copies
        y = self.labels.repeat(copies)
        rows = torch.arange(total, device=decoded.device) % n  # the rows of decoded.repeat(copies, 1, 1, 1)
        # every draw of the one-batch step, made once for all N copies in the same order and amounts
        draw = draw_augment(total, decoded.shape[1], decoded.dtype, self.spec, self.gen, self.dev_gen) \
            if self.cfg.augment else None
        chunks = [(start, min(start + m, total)) for start in range(0, total, m)]

        def views(source: Tensor, start: int, stop: int) -> Tensor:
            x = source.index_select(0, rows[start:stop])
            return resize(x, self.spec.out_size) if draw is None else apply_augment(x, self.spec,
                                                                                     draw.rows(start, stop))

        leaf = decoded.detach().requires_grad_(True)
        with torch.no_grad():
            z = torch.cat([self._features(views(leaf, a, b)) for a, b in chunks])
        z.requires_grad_(True)
        g_syn = head_gradient(z if centre is None else z.float() - centre, y, weight, bias)
        loss = matching_loss(g_real, g_syn)
        (loss * self.loss_scale).backward()  # -> scale * dLoss/dz in z.grad
        dz = z.grad
        assert dz is not None
        for a, b in chunks:  # each chunk's share, accumulated in leaf.grad
            self._features(views(leaf, a, b)).backward(dz[a:b])
        decoded.backward(leaf.grad)  # one backward through the decode into the pyramid levels
        return loss.detach()

    def step(self) -> float:
        """Run update ``step_done`` (0-indexed); returns its meta-loss."""
        if self.images.maybe_grow(self.step_done, self.schedule, self.gen):
            self.optimizer = self._make_optimizer()
        m = self.resolve_micro_batch()
        weight, bias = random_head(self.num_classes, self.backbone.feature_dim, self.cfg.head_std,
                                   self.dev_gen, self.device)
        g_real, centre = self.real_gradient(weight, bias)
        if m is None or m >= self._synthetic_count():  # one pass: the official step
            g_syn = self.synthetic_gradient(weight, bias, centre)
            loss = matching_loss(g_real, g_syn)
            self.optimizer.zero_grad(set_to_none=True)
            (loss * self.loss_scale).backward()
        else:
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.chunked_backward(g_real, weight, bias, centre, m)
        params = self.images.parameters()
        if self.loss_scale != 1.0:
            for p in params:
                if p.grad is not None:
                    p.grad.div_(self.loss_scale)
        finite = all(p.grad is None or bool(torch.isfinite(p.grad).all()) for p in params)
        if finite:
            self.optimizer.step()
        else:
            self.skipped_steps += 1
        self.step_done += 1
        value = float(loss.detach())
        self.loss_curve.append(value)
        return value

    def run(self) -> Tensor:
        """All remaining steps (resuming from a matching checkpoint); returns the decoded images (CPU)."""
        from tqdm.auto import tqdm

        self.try_resume()
        total = self.schedule.updates
        if self.step_done < total:
            self.resolve_micro_batch()  # before the bank, which is embedded in chunks of it too
        if self.cfg.real_bank and self.step_done < total:
            self.real_bank()  # built before the timed steps: its time is recorded apart
        every = self.cfg.checkpoint_every
        bar = tqdm(total=total, initial=self.step_done, desc=f"lgm {self.backbone.name}", unit="step",
                   disable=not self.progress, leave=False)
        if self.epoch_batches is not None:  # the official loader's rows are known ahead: decode them ahead
            self.real.plan(self.epoch_batches, self.step_done, total)
        try:
            while self.step_done < total:
                started = time.perf_counter()
                value = self.step()
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                self.seconds += time.perf_counter() - started
                self.steps_timed += 1
                bar.update(1)
                if self.step_done % 10 == 0 or self.step_done == total:
                    bar.set_postfix(loss=f"{value:.4f}")
                if every and (self.step_done % every == 0 or self.step_done == total):
                    self.save_checkpoint()
                if self.on_step is not None:
                    self.on_step(self.step_done, value)
                # a job's preemption / time-limit signal: checkpoint this step and stop (benchmark.preemption)
                checkpoint_point(self.save_checkpoint, f"step {self.step_done}")
        finally:
            bar.close()
            self.real.close()
        return self.final_images()

    def final_images(self) -> Tensor:
        with torch.no_grad():
            return self.images.decode().float().cpu().contiguous()

    def metadata(self) -> dict[str, Any]:
        return {
            "config": self.cfg.to_dict(),
            "backbone": _jsonable(self.backbone.identity.key()),
            "dataset": self.train.name, "split": self.train.split,
            "train_fingerprint": self.train.fingerprint, "num_train": len(self.train),
            "num_classes": self.num_classes, "class_names": list(self.train.class_names),
            "ipc": self.ipc, "seed": self.seed,
            "steps_done": self.step_done, "updates": self.schedule.updates, "schedule": self.schedule.kind,
            "growth_updates": self.schedule.growth_updates(len(getattr(self.images, "sizes", [0]))),
            "loss_curve": list(self.loss_curve),
            "skipped_steps": self.skipped_steps, "resumed_from": self.resumed_from,
            "seconds_per_step": self.seconds / self.steps_timed if self.steps_timed else None,
            "step_seconds_total": self.seconds,
            "device": str(self.device), "precision": str(self.dtype).replace("torch.", ""),
            "loss_scale": self.loss_scale, "real_preloaded": self.real.preloaded,
            "real_wait_seconds": self.real.wait_seconds, "decode_workers": self.real.workers,
            "real_bank_views": 0 if self.bank is None else len(self.bank[1]),
            "real_bank_seconds": self.bank_seconds, "init_rows": self.init_rows,
            "image_size": self.cfg.syn_res,
            "micro_batch": self.micro_batch if isinstance(self.micro_batch, int) else None,
            "pyramid_levels": [t.shape[-1] for t in self.images.levels],
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
