"""The distillation loop every objective shares (docs/method.md): synthetic images, decoded and augmented,
go through a frozen backbone; the objective (``method/objective.py``) turns their features and a real
batch's into a loss; Adam updates the image parameters.

One update:
  1. grow the pyramid if due (and re-create the optimiser);
  2. the objective's target: it asks for the real features (``ipc * K * C`` real images for LGM, each
     augmented once, or the real bank's features) and makes its own draws (LGM: a fresh random head);
  3. the decoded synthetic set repeated K times, each copy augmented independently -> features z with
     the graph kept -> the objective's loss (LGM: 1 - cos(g_real, g_syn) over the whole flattened [W; b]);
  4. backward (scaled under fp16), Adam on the image parameters.
With ``micro_batch`` m (not in the paper) the same update runs in chunks of at most m images: a no-grad
pass gives the synthetic features z, hence the loss and dLoss/dz (autograd on a leaf copy of z); then each
chunk is recomputed with the graph from the decoded images and back-propagates ``dLoss/dz_chunk``; the
decoded images' gradient, summed over the chunks, goes through the decode once. The augmentation of all
N copies is drawn once, as in the one-batch update, and applied chunk by chunk, so the result is that of
the one-batch update up to float summation order (tests: <= 1e-5 after 3 updates), for every objective.
On CUDA ``micro_batch`` is ``"auto"`` unless set, and an update that runs out of memory is run again
with half the chunk (its random draws replayed), which the metadata records.
On CUDA the backbone runs under the objective's autocast (LGM: fp16 with the manual x1024 loss scale, as
the official code; DM, KRR: bf16, no scale) unless ``precision`` says otherwise; on a CPU everything is
fp32. An update whose scaled gradients are not finite is skipped (counted
in the metadata): the official code has no such guard, but it never fires unless fp16 overflows.
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
from .config import DistillConfig
from .objective import Objective, objective_for
from .pyramid import GrowthSchedule, PixelImages, PyramidImages, SyntheticImages
from .real import EpochBatches, RealImages, sample_balanced, sample_indices

log = logging.getLogger(__name__)

DEVICE_SEED_OFFSET = 0x9E3779B9  # the device generator's seed is derived from the run's seed
BANK_SEED_OFFSET = 0x5BD1E995  # the real bank has its own stream, so resuming rebuilds it identically
BANK_BATCH = 256
ONE_PASS = None  # micro_batch: the whole update in one backbone pass


DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def resolve_precision(precision: str, device: torch.device, cuda_auto: str = "fp16") -> torch.dtype:
    """The autocast dtype; ``"auto"``: ``cuda_auto`` on CUDA (the objective's), fp32 on a CPU."""
    if precision == "auto":
        return DTYPES[cuda_auto] if device.type == "cuda" else torch.float32
    return DTYPES[precision]


def is_out_of_memory(err: BaseException) -> bool:
    """A CUDA allocation failure (``torch.cuda.OutOfMemoryError``, or a RuntimeError saying so)."""
    return isinstance(err, torch.cuda.OutOfMemoryError) or (
        isinstance(err, RuntimeError) and "out of memory" in str(err))


def initial_micro_batch(setting: int | str | None, device: torch.device) -> int | str | None:
    """The run's starting ``micro_batch``: "auto" on CUDA unless set (None or "auto"); one pass on a CPU
    unless a chunk size is given; "off" one pass everywhere."""
    if setting is None or setting == "auto":
        return "auto" if device.type == "cuda" else ONE_PASS
    return ONE_PASS if setting == "off" else setting


class Distiller:
    """One distillation run; ``cfg`` must be resolved (``cfg.resolve``). ``run()`` returns the images.
    ``objective``: the objective class (default: the one whose ``Config`` is ``cfg``'s type)."""

    def __init__(self, cfg: DistillConfig, train: LabeledImages, backbone: Backbone, ipc: int, seed: int,
                 device: torch.device | str = "cpu", artifact_dir: Path | None = None, progress: bool = False,
                 on_step: Callable[[int, float], None] | None = None, workers: int = 0,
                 objective: type[Objective] | None = None) -> None:
        if cfg.syn_res is None or cfg.crop_res is None or cfg.real_res is None:
            raise ValueError("Distiller needs a resolved config (cfg.resolve(input_size))")
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
        self.objective: Objective = (objective or objective_for(cfg))(cfg, self)
        self.dtype = resolve_precision(cfg.precision, self.device, self.objective.cuda_autocast)
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
        self.schedule = GrowthSchedule(cfg.steps, cfg.grow_every, cfg.schedule)
        self._open_real_images(workers)
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
        self.micro_batch: int | str | None = initial_micro_batch(cfg.micro_batch, self.device)
        self.oom_retries: list[dict[str, int]] = []  # each halving: the update and the new chunk size

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
            images.start_from(self.real_pixels(rows, self.gen))
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
            return self.micro_batch  # type: ignore[return-value]
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
        inputs = (2 * total + self._real_pass_images()) * 3 * crop * crop * 4  # real pass, synthetic, noise
        m = int(max(1, min(total, (0.8 * free - inputs) // per_image)))
        log.info("micro_batch auto: %d images per pass (%.1f MiB per image, %.1f GiB free)", m,
                 per_image / 2**20, free / 2**30)
        self.micro_batch = m
        return m

    def _real_pass_images(self) -> int:
        """Real images on the device at once while an update's real batch is embedded."""
        if self.cfg.real_bank:
            return 0
        batch = self.objective.real_per_class(self.ipc) * self.num_classes
        block = self.objective.real_block
        return batch if block is None else min(block, batch)

    # -- real images: every use of method/real.py ------------------------------------------------------
    def _open_real_images(self, workers: int) -> None:
        cfg = self.cfg
        self.real = RealImages(self.train, cfg.real_res, interpolation=self.backbone.identity.interpolation,
                               workers=workers)
        batch = self.objective.real_per_class(self.ipc) * self.num_classes
        self.epoch_batches = (EpochBatches(len(self.train), batch, self.seed)
                              if cfg.real_sampling == "epoch" and not cfg.real_bank else None)

    def real_pixels(self, rows: Tensor, gen: torch.Generator) -> Tensor:
        """The training images ``rows``, resized and randomly cropped (crops from ``gen``), on the device."""
        return self.real.batch(rows, gen, self.device)

    def plan_real(self) -> None:
        """Where the coming updates' real rows are known ahead (the epoch loader's), have ``RealImages``
        decode them a step ahead, block by block as :meth:`embed_real` asks for them (one block per
        update when the objective embeds its batch at once, as LGM does)."""
        batches = self.epoch_batches
        if batches is None:
            return
        block = self.objective.real_block or batches.batch
        per_update = -(-batches.batch // block)

        def rows_of_block(j: int) -> Tensor:
            update, part = divmod(j, per_update)
            return batches(update)[part * block:(part + 1) * block]

        self.real.plan(rows_of_block, self.step_done * per_update, self.schedule.updates * per_update)

    def step_real_rows(self) -> Tensor:
        """The rows of this update's real batch: the epoch loader's batch number ``step_done``, or a draw."""
        if self.epoch_batches is not None:  # one real batch per update: the update index addresses it
            return self.epoch_batches(self.step_done)
        per_class = self.objective.real_per_class(self.ipc)
        if self.cfg.real_sampling == "balanced":
            return sample_balanced(self.class_rows, per_class, self.gen)
        return sample_indices(len(self.train), per_class * self.num_classes, self.gen)

    def embed_real(self, rows: Tensor, gen: torch.Generator, dev_gen: torch.Generator,
                   block: int | None) -> Tensor:
        """Float32 features of ``rows``, each augmented once, ``block`` images at a time (None: all at once;
        each block draws its crops, then its augmentation). Call it without grad."""
        step = block or len(rows)
        feats = [self._features_chunked(augment(self.real_pixels(rows[a:a + step], gen), self.spec, gen,
                                                dev_gen)).float()
                 for a in range(0, len(rows), step)]
        return torch.cat(feats)

    def step_real_batch(self) -> tuple[Tensor, Tensor]:
        """This update's real features and labels (detached): the bank's, or a fresh augmented batch's."""
        if self.cfg.real_bank:
            return self.real_bank()
        idx = self.step_real_rows()
        y = self.train_labels[idx].to(self.device)
        with torch.no_grad():
            return self.embed_real(idx, self.gen, self.dev_gen, self.objective.real_block), y

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
            with torch.no_grad():
                feats = self.embed_real(rows, gen, dev_gen, BANK_BATCH)
            self.bank = (feats, self.train_labels[rows].to(self.device))
            self.bank_seconds = time.perf_counter() - started
            log.info("real bank: %d views embedded in %.1f s", len(rows), self.bank_seconds)
        return self.bank

    # -- identity and checkpoints --------------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        found = {"config": self.cfg.to_dict(result_only=True), "backbone": _jsonable(self.backbone.identity.key()),
                 "train_fingerprint": self.train.fingerprint, "num_train": len(self.train),
                 "num_classes": self.num_classes, "ipc": self.ipc, "seed": self.seed,
                 "device_type": self.device.type}
        if self.objective.name != "lgm":  # LGM's checkpoints predate objectives: theirs resume as they are
            found["objective"] = self.objective.name
        return found

    def state(self) -> dict[str, Any]:
        return {"step": self.step_done, "levels": self.images.state(),
                "optimizer": self.optimizer.state_dict(), "loss_curve": list(self.loss_curve),
                "skipped_steps": self.skipped_steps, "gen": self.gen.get_state(),
                "dev_gen": self.dev_gen.get_state(), "seconds": self.seconds, "steps_timed": self.steps_timed,
                "oom_retries": list(self.oom_retries),
                "micro_batch": self.micro_batch if isinstance(self.micro_batch, int) else None}

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
        self.oom_retries = [dict(r) for r in found.get("oom_retries", [])]
        if found.get("micro_batch") is not None and self.oom_retries:  # the chunk that fitted, not again auto
            self.micro_batch = int(found["micro_batch"])
        checkpoint.set_global_rng_state(found["global_rng"])
        self.resumed_from = self.step_done
        log.info("resumed %s from %s at step %d", self.objective.name, self.checkpoint_path, self.step_done)
        return True

    # -- the update ----------------------------------------------------------------------------------
    def synthetic_features(self) -> tuple[Tensor, Tensor]:
        """Features (with the graph) and labels of the decoded set's K augmented copies, copy-major."""
        # without augmentation the K copies would be identical: one copy gives the same loss
        copies = self.cfg.augs_per_batch if self.cfg.augment else 1
        x = self.images.decode().repeat(copies, 1, 1, 1)
        y = self.labels.repeat(copies)
        return self._features(augment(x, self.spec, self.gen, self.dev_gen)), y

    def chunked_backward(self, target: Any, m: int) -> Tensor:
        """The objective's loss of ``synthetic_features``, and its scaled backward into the image parameters,
        with at most ``m`` images per backbone pass. Returns the (detached) loss."""
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
        loss = self.objective.loss(z, y, target)
        (loss * self.loss_scale).backward()  # -> scale * dLoss/dz in z.grad
        dz = z.grad
        assert dz is not None
        for a, b in chunks:  # each chunk's share, accumulated in leaf.grad
            self._features(views(leaf, a, b)).backward(dz[a:b])
        decoded.backward(leaf.grad)  # one backward through the decode into the pyramid levels
        return loss.detach()

    def _gradients(self, m: int | None) -> Tensor:
        """The update's loss, its scaled gradients left in the image parameters; ``m`` images per pass."""
        target = self.objective.target(self.step_real_batch)
        if m is None or m >= self._synthetic_count():  # one pass: the official step
            z, y = self.synthetic_features()
            loss = self.objective.loss(z, y, target)
            self.optimizer.zero_grad(set_to_none=True)
            (loss * self.loss_scale).backward()
            return loss
        self.optimizer.zero_grad(set_to_none=True)
        return self.chunked_backward(target, m)

    def fitting_memory(self, attempt: Callable[[int | None], Any]) -> Any:
        """``attempt(micro_batch)``; when the device runs out of memory, the same attempt again with half as
        many images per pass (down to one), every random draw replayed, each halving recorded."""
        states = self.gen.get_state(), self.dev_gen.get_state(), torch.get_rng_state()
        while True:
            m = self.resolve_micro_batch()
            try:
                return attempt(m)
            except RuntimeError as err:  # torch.cuda.OutOfMemoryError is one
                if not is_out_of_memory(err) or (m is not None and m <= 1):
                    raise
            # outside the except block, so the failed attempt's tensors are freed before the next
            self.optimizer.zero_grad(set_to_none=True)
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            self.gen.set_state(states[0])
            self.dev_gen.set_state(states[1])
            torch.set_rng_state(states[2])
            self.plan_real()  # the failed attempt took this update's planned real rows: plan them again
            self.micro_batch = max(1, (m if m is not None else self._synthetic_count()) // 2)
            self.oom_retries.append({"update": self.step_done, "micro_batch": self.micro_batch})
            log.warning("update %d ran out of memory; again with micro_batch=%d", self.step_done, self.micro_batch)

    def step(self) -> float:
        """Run update ``step_done`` (0-indexed); returns its loss."""
        if self.images.maybe_grow(self.step_done, self.schedule, self.gen):
            self.optimizer = self._make_optimizer()
        loss = self.fitting_memory(self._gradients)
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
            self.fitting_memory(lambda m: self.real_bank())  # before the timed steps: its time is recorded apart
        every = self.cfg.checkpoint_every
        bar = tqdm(total=total, initial=self.step_done, desc=f"{self.objective.name} {self.backbone.name}",
                   unit="step", disable=not self.progress, leave=False)
        self.plan_real()
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
            "objective": self.objective.name,
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
            "real_per_class": None if self.cfg.real_bank else self.objective.real_per_class(self.ipc),
            "real_wait_seconds": self.real.wait_seconds, "decode_workers": self.real.workers,
            "real_bank_views": 0 if self.bank is None else len(self.bank[1]),
            "real_bank_seconds": self.bank_seconds, "init_rows": self.init_rows,
            "image_size": self.cfg.syn_res,
            "micro_batch": self.micro_batch if isinstance(self.micro_batch, int) else None,
            "oom_retries": list(self.oom_retries),
            "pyramid_levels": [t.shape[-1] for t in self.images.levels],
            **self.objective.metadata(),
        }

    # -- LGM's parts, kept on the loop for its callers -----------------------------------------------
    def real_gradient(self, weight: Tensor, bias: Tensor) -> tuple[Tensor, Tensor | None]:
        """LGM's g_real (detached) for this head, and the feature centre (or None); see ``method/lgm.py``."""
        return self.objective.real_gradient(self.step_real_batch, weight, bias)  # type: ignore[attr-defined]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
