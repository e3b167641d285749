"""One task per model kind: its modules, optimisers, training step, epoch-end evaluation and state.

Each `step` follows pytorch/examples: D on `fake.detach()`, then G; losses come from pure
functions; randomness comes only from the task's own torch.Generator.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genmodels import scoring
from genmodels.metrics import class_spread, spread_ratios
from genmodels.checkpoint import optimizer_tensors, restore_optimizer
from genmodels.data import to_signed, to_unit
from genmodels.models import (
    IMAGE_PIXELS,
    CGANConfig, Classifier, ClassifierConfig, CondDiscriminator, CondGenerator, Discriminator, GANConfig,
    Generator, Mapper, MapperConfig, VAE, VAEConfig, vae_loss,
)
from genmodels.recipes import Recipe
from train.recipes import resolve_compile, resolve_precision

EVAL_SAMPLES_PER_CLASS = 100  # 1,000 images per epoch-end quality check
GRID_SIZE = 100  # 10 x 10 fixed-noise grid per epoch
GRID_SEED = 1234
EVAL_SEED = 4321


class FusedAdam(torch.optim.Adam):
    """torch.optim.Adam(fused=True), or AdamW with weight decay, with a lean `step`: the same kernel, state and
    results, without torch.optim's per-call bookkeeping (~0.4 ms a call, 4-8% of a batch-64 step on 2 cores)."""

    def __init__(self, params, lr: float, betas: tuple[float, float], weight_decay: float = 0.0):
        decoupled = weight_decay > 0
        super().__init__(params, lr=lr, betas=betas, weight_decay=weight_decay, decoupled_weight_decay=decoupled, fused=True)
        self._kernel = torch._fused_adamw_ if decoupled else torch._fused_adam_

    @torch.no_grad()
    def step(self, closure=None):
        groups = [[p for p in group["params"] if p.grad is not None] for group in self.param_groups]
        if closure is not None or any(p not in self.state for params in groups for p in params):
            return super().step(closure)  # the first step creates the state
        for group, params in zip(self.param_groups, groups):
            states = [self.state[p] for p in params]
            steps = [state["step"] for state in states]
            torch._foreach_add_(steps, 1)
            beta1, beta2 = group["betas"]
            self._kernel(params, [p.grad for p in params], [state["exp_avg"] for state in states],
                         [state["exp_avg_sq"] for state in states], [], steps, lr=group["lr"], beta1=beta1, beta2=beta2,
                         weight_decay=group["weight_decay"], eps=group["eps"], amsgrad=False, maximize=False)
        return None


def make_adam(params, recipe: Recipe, device: torch.device) -> torch.optim.Adam:
    """Adam (AdamW when weight decay is set): `FusedAdam` where this torch build has the fused kernel for the parameters' device."""
    params = list(params)
    betas = tuple(recipe.betas)
    try:
        return FusedAdam(params, lr=recipe.lr, betas=betas, weight_decay=recipe.weight_decay)
    except (RuntimeError, TypeError, ValueError):
        cls = torch.optim.AdamW if recipe.weight_decay else torch.optim.Adam
        return cls(params, lr=recipe.lr, betas=betas, weight_decay=recipe.weight_decay, foreach=True)


def lr_factor(recipe: Recipe, step: int, total_steps: int) -> float:
    """Multiplier of the base learning rate at a global step."""
    if recipe.schedule == "cosine" and total_steps > 0:
        progress = min(step / total_steps, 1.0)
        return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


def jitter(images: torch.Tensor, mode: str, generator: torch.Generator) -> torch.Tensor:
    """Random translation by up to 2 px per image; 'shift_flip' adds a horizontal flip and
    'shift_flip_blur' also blurs half of the images (sigma up to 1.2 px), so the classifier
    judges the softer images that generators make as fairly as sharp ones."""
    if mode == "none":
        return images
    n = len(images)
    shift = (torch.randint(-2, 3, (n, 2), generator=generator, device=generator.device).to(images.device).float()) * (2.0 / 28.0)
    theta = torch.zeros(n, 2, 3, device=images.device)
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    if mode in ("shift_flip", "shift_flip_blur"):
        flip = torch.rand(n, generator=generator, device=generator.device).to(images.device) < 0.5
        theta[:, 0, 0] = torch.where(flip, -1.0, 1.0)
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    background = images.amin(dim=(1, 2, 3), keepdim=True)
    moved = F.grid_sample(images - background, grid, mode="nearest", padding_mode="zeros", align_corners=False) + background
    if mode == "shift_flip_blur":
        sigma = torch.rand(n, generator=generator, device=generator.device).to(images.device) * 1.2
        sigma = torch.where(torch.rand(n, generator=generator, device=generator.device).to(images.device) < 0.5, sigma, 0.0)
        moved = gaussian_blur(moved, sigma)
    return moved


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Blur each image [N, 1, H, W] with its own Gaussian sigma [N] (0 = unchanged), 5x5 kernel."""
    offsets = torch.arange(-2, 3, device=images.device, dtype=images.dtype)
    weights = torch.exp(-offsets.pow(2) / (2 * sigma.clamp_min(1e-3).pow(2)[:, None]))
    weights = weights / weights.sum(1, keepdim=True)  # [N, 5]; sigma -> 0 gives the identity kernel
    kernels = (weights[:, :, None] * weights[:, None, :]).unsqueeze(1)  # [N, 1, 5, 5]
    n, _, h, w = images.shape
    padded = F.pad(images.reshape(1, n, h, w), (2, 2, 2, 2), mode="replicate")
    return F.conv2d(padded, kernels, groups=n).reshape(n, 1, h, w)


def bce_logits(logits: torch.Tensor, target: float) -> torch.Tensor:
    """Binary cross-entropy of logits against a constant target."""
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def gan_d_loss(d_real: torch.Tensor, d_fake: torch.Tensor, smoothing: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss on real, loss on fake) for the discriminator, with one-sided label smoothing."""
    return bce_logits(d_real, 1.0 - smoothing), bce_logits(d_fake, 0.0)


class GeneratorAverage:
    """Exponential moving average of a generator's weights, the usual cure for GAN sample noise."""

    def __init__(self, generator: nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(generator).requires_grad_(False).eval()
        self._source = list(generator.parameters())
        self._target = list(self.module.parameters())

    @torch.no_grad()
    def update(self, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))  # warm-up: early averages forget the random init
        torch._foreach_lerp_(self._target, self._source, 1.0 - decay)


class BaseTask:
    """Shared plumbing: device, generators, learning-rate schedule and resumable state."""

    kind = ""
    needs_judge = False

    def __init__(self, recipe: Recipe, device: torch.device, total_steps: int):
        self.recipe = recipe
        self.device = device
        self.total_steps = total_steps
        self.step_count = 0
        self.rng = torch.Generator(device=device).manual_seed(recipe.seed + 1)
        self.precision = resolve_precision(recipe.precision, device)
        self.compiled = False  # whether the step runs torch.compile'd (see VAETask)
        self.compile_failure: str | None = None  # why compiling failed, when it did and the run went on uncompiled
        self.judge: Classifier | None = None
        self.modules: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}

    # -- data
    def prepare(self, images_uint8: torch.Tensor) -> torch.Tensor:
        """Whole-split uint8 images -> the float tensor this task trains on (on its device)."""
        return to_signed(images_uint8).to(self.device)

    def autocast(self) -> torch.autocast:
        """Context for training forward passes: bf16 matmuls when the run's precision is bf16."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    # -- loop hooks
    def train_mode(self) -> None:
        for module in self.trainable():
            module.train()

    def trainable(self) -> list[nn.Module]:
        return [m for name, m in self.modules.items() if name in self.optimizers]

    def _schedule(self) -> None:
        factor = lr_factor(self.recipe, self.step_count, self.total_steps)
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group["lr"] = self.recipe.lr * factor
        self.step_count += 1

    # -- outputs
    def model(self) -> nn.Module:
        raise NotImplementedError

    def grid_images(self) -> torch.Tensor | None:
        return None

    def evaluate(self, test_images: torch.Tensor, test_labels: torch.Tensor) -> dict[str, float]:
        return {}

    def finalize(self, train_images: torch.Tensor, train_labels: torch.Tensor) -> None:
        """Work after the last epoch (and before any checkpoint), e.g. the VAE's class Gaussians."""

    def before_training(self, train_images: torch.Tensor, train_labels: torch.Tensor) -> None:
        """Work on the uint8 train split before the first step (and again on resume), e.g. the mapper's second judge."""

    def preparation(self) -> str | None:
        """What `before_training` does, for a run's status while it works (None: nothing worth a note)."""
        return None

    # -- resumable state
    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors: dict[str, torch.Tensor] = {}
        meta: dict[str, Any] = {"step_count": self.step_count, "optimizers": {}}
        for name, module in self.modules.items():
            tensors.update({f"module.{name}.{k}": v for k, v in module.state_dict().items()})
        for name, opt in self.optimizers.items():
            opt_tensors, rest = optimizer_tensors(opt, f"optim.{name}")
            tensors.update(opt_tensors)
            meta["optimizers"][name] = rest
        tensors["rng.task"] = self.rng.get_state()
        return tensors, meta

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        for name, module in self.modules.items():
            prefix = f"module.{name}."
            module.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
        for name, opt in self.optimizers.items():
            restore_optimizer(opt, f"optim.{name}", {k: v.to(self.device) for k, v in tensors.items()}, meta["optimizers"][name])
        self.rng.set_state(tensors["rng.task"])
        self.step_count = meta["step_count"]

    # -- quality checks with the project classifier
    def _eval_labels(self, num_classes: int) -> torch.Tensor:
        return torch.arange(num_classes).repeat_interleave(EVAL_SAMPLES_PER_CLASS)


class ClassifierTask(BaseTask):
    """The CNN classifier: cross-entropy with Adam, shift (and flip) jitter."""

    kind = "classifier"

    def __init__(self, config: ClassifierConfig, recipe: Recipe, device: torch.device, total_steps: int):
        super().__init__(recipe, device, total_steps)
        torch.manual_seed(recipe.seed)
        self.classifier = Classifier(config).to(device)
        self.modules = {"classifier": self.classifier}
        self.optimizers = {"classifier": make_adam(self.classifier.parameters(), recipe, device)}

    def step(self, images, labels):
        self._schedule()
        # channels-last activations: the CPU's batch norm and max-pool kernels vectorise over channels (~1.3x a step)
        inputs = jitter(images, self.recipe.augment, self.rng).to(memory_format=torch.channels_last)
        with self.autocast():
            logits = self.classifier(inputs).float()
        loss = F.cross_entropy(logits, labels)
        opt = self.optimizers["classifier"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        accuracy = (logits.detach().argmax(1) == labels).float().mean()
        return {"loss": loss.detach(), "accuracy": accuracy}

    @torch.no_grad()
    def evaluate(self, test_images, test_labels):
        self.classifier.eval()
        losses, hits = [], 0
        for images, labels in zip(test_images.split(2000), test_labels.split(2000)):
            logits = self.classifier(images)
            losses.append(F.cross_entropy(logits, labels, reduction="sum"))
            hits += int((logits.argmax(1) == labels).sum())
        return {"test_loss": float(torch.stack(losses).sum()) / len(test_labels), "test_accuracy": hits / len(test_labels)}

    def model(self):
        return self.classifier


class GANTask(BaseTask):
    """The unconditional MLP GAN (report 001): BCE, Adam, D step then G step."""

    kind = "gan"
    needs_judge = True

    def __init__(self, config: GANConfig, recipe: Recipe, device: torch.device, total_steps: int):
        super().__init__(recipe, device, total_steps)
        torch.manual_seed(recipe.seed)
        self.generator = Generator(config).to(device)
        self.discriminator = Discriminator(config).to(device)
        self.modules = {"generator": self.generator, "discriminator": self.discriminator}
        self.optimizers = {
            "generator": make_adam(self.generator.parameters(), recipe, device),
            "discriminator": make_adam(self.discriminator.parameters(), recipe, device),
        }
        self.average = GeneratorAverage(self.generator, recipe.ema_decay) if recipe.ema_decay else None
        if self.average is not None:
            self.modules["generator_ema"] = self.average.module
        self.fixed_noise = torch.randn(GRID_SIZE, config.latent_dim, generator=torch.Generator().manual_seed(GRID_SEED)).to(device)

    def step(self, images, labels):
        self._schedule()
        z = torch.randn(len(images), self.generator.latent_dim, generator=self.rng, device=self.device)
        with self.autocast():
            fake = self.generator(z)
            # one D pass over real and fake: larger matmuls and no gradient accumulation across two passes
            d_out = self.discriminator(torch.cat([images.to(fake.dtype), fake.detach()]))
        d_real, d_fake = d_out.float().split(len(images))
        loss_d_real, loss_d_fake = gan_d_loss(d_real, d_fake, self.recipe.label_smoothing)
        loss_d = loss_d_real + loss_d_fake
        opt_d, opt_g = self.optimizers["discriminator"], self.optimizers["generator"]
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        self.discriminator.requires_grad_(False)  # G's step needs gradients through D, not of D
        with self.autocast():
            d_fake_g = self.discriminator(fake)
        loss_g = bce_logits(d_fake_g.float(), 1.0)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        self.discriminator.requires_grad_(True)
        if self.average is not None:
            self.average.update(self.step_count)
        return {
            "loss_d": loss_d.detach(), "loss_g": loss_g.detach(),
            "d_real": torch.sigmoid(d_real.detach()).mean(), "d_fake": torch.sigmoid(d_fake.detach()).mean(),
        }

    @torch.no_grad()
    def grid_images(self):
        return self.model().eval().decode(self.fixed_noise).cpu()

    @torch.no_grad()
    def evaluate(self, test_images, test_labels):
        if self.judge is None:
            return {}
        generator = self.model().eval()
        gen = torch.Generator().manual_seed(EVAL_SEED)
        z = torch.randn(10 * EVAL_SAMPLES_PER_CLASS, generator.latent_dim, generator=gen).to(self.device)
        class_mix = torch.bincount(test_labels.cpu(), minlength=self.judge.config.num_classes)
        return scoring.judge_checks(self.judge, generator.decode(z), None, class_mix)

    def model(self):
        return self.average.module if self.average is not None else self.generator


class CGANTask(BaseTask):
    """The conditional MLP GAN (report 000) with a projection + auxiliary-class discriminator."""

    kind = "cgan"
    needs_judge = True

    def __init__(self, config: CGANConfig, recipe: Recipe, device: torch.device, total_steps: int):
        super().__init__(recipe, device, total_steps)
        torch.manual_seed(recipe.seed)
        self.config = config
        self.generator = CondGenerator(config).to(device)
        self.discriminator = CondDiscriminator(config).to(device)
        self.modules = {"generator": self.generator, "discriminator": self.discriminator}
        self.optimizers = {
            "generator": make_adam(self.generator.parameters(), recipe, device),
            "discriminator": make_adam(self.discriminator.parameters(), recipe, device),
        }
        self.average = GeneratorAverage(self.generator, recipe.ema_decay) if recipe.ema_decay else None
        if self.average is not None:
            self.modules["generator_ema"] = self.average.module
        gen = torch.Generator().manual_seed(GRID_SEED)
        self.fixed_noise = torch.randn(GRID_SIZE, config.latent_dim, generator=gen).to(device)
        self.fixed_labels = torch.arange(config.num_classes).repeat(GRID_SIZE // config.num_classes).to(device)

    def step(self, images, labels):
        self._schedule()
        n = len(images)
        z = torch.randn(n, self.config.latent_dim, generator=self.rng, device=self.device)
        fake_labels = torch.randint(0, self.config.num_classes, (n,), generator=self.rng, device=self.device)
        with self.autocast():
            fake = self.generator(z, fake_labels)
            # one D pass over real and fake: larger matmuls and no gradient accumulation across two passes
            logits, classes = self.discriminator(torch.cat([images.to(fake.dtype), fake.detach()]), torch.cat([labels, fake_labels]))
        logits, classes = logits.float(), classes.float()
        d_real, d_fake = logits.split(n)
        class_real = classes[:n]
        loss_d_real, loss_d_fake = gan_d_loss(d_real, d_fake, self.recipe.label_smoothing)
        loss_d_class = F.cross_entropy(class_real, labels)
        loss_d = loss_d_real + loss_d_fake + self.config.aux_weight * loss_d_class
        opt_d, opt_g = self.optimizers["discriminator"], self.optimizers["generator"]
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        self.discriminator.requires_grad_(False)
        with self.autocast():
            d_fake_g, class_fake = self.discriminator(fake, fake_labels)
        d_fake_g, class_fake = d_fake_g.float(), class_fake.float()
        loss_g_adv = bce_logits(d_fake_g, 1.0)
        loss_g_class = F.cross_entropy(class_fake, fake_labels)
        loss_g = loss_g_adv + self.config.aux_weight * loss_g_class
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        self.discriminator.requires_grad_(True)
        if self.average is not None:
            self.average.update(self.step_count)
        return {
            "loss_d": loss_d.detach(), "loss_g": loss_g.detach(),
            "loss_d_class": loss_d_class.detach(), "loss_g_class": loss_g_class.detach(),
            "d_real": torch.sigmoid(d_real.detach()).mean(), "d_fake": torch.sigmoid(d_fake.detach()).mean(),
        }

    @torch.no_grad()
    def grid_images(self):
        return self.model().eval().decode(self.fixed_noise, self.fixed_labels).cpu()

    @torch.no_grad()
    def evaluate(self, test_images, test_labels):
        if self.judge is None:
            return {}
        labels = self._eval_labels(self.config.num_classes)
        z = torch.randn(len(labels), self.config.latent_dim, generator=torch.Generator().manual_seed(EVAL_SEED))
        images = self.model().eval().decode(z.to(self.device), labels.to(self.device))
        return scoring.judge_checks(self.judge, images, labels)

    def model(self):
        return self.average.module if self.average is not None else self.generator


class VAETask(BaseTask):
    """The MLP VAE (report 000): BCE summed over pixels + KL, Adam; class Gaussians for labelled sampling."""

    kind = "vae"
    needs_judge = True

    def __init__(self, config: VAEConfig, recipe: Recipe, device: torch.device, total_steps: int):
        super().__init__(recipe, device, total_steps)
        torch.manual_seed(recipe.seed)
        self.config = config
        self.vae = VAE(config).to(device)
        self.modules = {"vae": self.vae}
        self.optimizers = {"vae": make_adam(self.vae.parameters(), recipe, device)}
        self.fixed_noise = torch.randn(GRID_SIZE, config.latent_dim, generator=torch.Generator().manual_seed(GRID_SEED)).to(device)
        self.train_images: torch.Tensor | None = None
        self.train_labels: torch.Tensor | None = None
        self.compiled = resolve_compile(recipe.compile, self.kind, device, total_steps)
        # compiled lazily on the first step (~10 s on 2 cores); the noise is drawn outside, from the task's generator
        self._losses_fn = torch.compile(self._losses, dynamic=False) if self.compiled else self._losses

    def prepare(self, images_uint8):
        return to_unit(images_uint8).to(self.device)

    def _losses(self, images: torch.Tensor, labels: torch.Tensor, noise: torch.Tensor) -> dict[str, torch.Tensor]:
        """The step's forward pass: {'loss', 'recon', 'kl'(, 'loss_class')}, each a scalar."""
        with self.autocast():
            logits, mu, logvar, z = self.vae(images, noise=noise)
            class_logits = self.vae.to_class(z) if self.vae.to_class is not None else None
        recon, kl = vae_loss(logits.float(), images, mu, logvar)
        losses = {"loss": recon + kl, "recon": recon, "kl": kl}
        if class_logits is not None:
            losses["loss_class"] = F.cross_entropy(class_logits.float(), labels)
            losses["loss"] = losses["loss"] + self.config.class_weight * losses["loss_class"]
        return losses

    def step(self, images, labels):
        self._schedule()
        noise = torch.randn(len(images), self.config.latent_dim, generator=self.rng, device=self.device)
        try:
            losses = self._losses_fn(images, labels, noise)
        except Exception as exc:  # noqa: BLE001 - a build without a C++ compiler, an unsupported op...: train on uncompiled
            if not self.compiled:
                raise
            self.compile_failure = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            self.compiled, self._losses_fn = False, self._losses
            losses = self._losses(images, labels, noise)
        opt = self.optimizers["vae"]
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        opt.step()
        return {name: value.detach() for name, value in losses.items()}

    @torch.no_grad()
    def grid_images(self):
        self.vae.eval()
        return self.vae.decode(self.fixed_noise).cpu()

    @torch.no_grad()
    def fit_classes(self) -> None:
        self.vae.eval()
        mu = torch.cat([self.vae.encode(chunk)[0] for chunk in self.train_images.split(5000)])
        self.vae.fit_class_gaussians(mu, self.train_labels)

    @torch.no_grad()
    def evaluate(self, test_images, test_labels):
        self.vae.eval()
        gen = torch.Generator(device=self.device).manual_seed(EVAL_SEED)
        recon_sum = kl_sum = 0.0
        for chunk in test_images.split(2000):
            logits, mu, logvar, _ = self.vae(chunk, generator=gen)
            recon, kl = vae_loss(logits, chunk, mu, logvar)
            recon_sum += float(recon) * len(chunk)
            kl_sum += float(kl) * len(chunk)
        out = {"test_recon": recon_sum / len(test_images), "test_kl": kl_sum / len(test_images)}
        out["test_neg_elbo"] = out["test_recon"] + out["test_kl"]
        if self.judge is not None and self.train_images is not None:
            self.fit_classes()
            labels = self._eval_labels(self.config.num_classes)
            images = self.vae.sample(len(labels), labels.to(self.device), generator=torch.Generator().manual_seed(EVAL_SEED))
            out.update(scoring.judge_checks(self.judge, images, labels))
        return out

    def finalize(self, train_images, train_labels):
        self.fit_classes()

    def model(self):
        return self.vae


class PixelJudge(nn.Module):
    """A pixel MLP classifier (784-512-C): the mapper's second judge, sharing nothing with the CNN."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(IMAGE_PIXELS, 512), nn.ReLU(), nn.Linear(512, num_classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [N, 1, 28, 28] in [-1, 1] -> class logits [N, C]."""
        return self.body(images)


def train_pixel_judge(images: torch.Tensor, labels: torch.Tensor, num_classes: int, epochs: int, seed: int,
                      device: torch.device) -> PixelJudge:
    """Fit a PixelJudge on a uint8 split (seconds); frozen and in eval mode on return."""
    torch.manual_seed(seed)
    judge = PixelJudge(num_classes).to(device)
    optimizer = torch.optim.Adam(judge.parameters(), lr=1e-3)
    inputs, targets = to_signed(images).to(device), labels.to(device)
    order_generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(inputs), generator=order_generator).split(256):
            loss = F.cross_entropy(judge(inputs[idx]), targets[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return judge.eval().requires_grad_(False)


class MapperTask(BaseTask):
    """Report 001's question 10: class + noise -> latent of the frozen GAN generator.

    Trained through the frozen generator against two frozen judges that share nothing, the
    project CNN and a pixel MLP (cross-entropy on jittered images): a latent region that
    fools one architecture, like a squashed 8 that the CNN calls a 9, does not fool both.
    Judged alone, it learns to draw nearly one convincing image per class (0.46 of real images'
    within-class spread on Fashion, T-shirts 0.16). So a second term (`match_weight`) matches, per
    class, its images to those the generator draws from the prior latents that the judges confidently
    call that class (`class_latents`, `class_match_loss`): each class comes out about as varied as the
    generator itself draws it. A penalty (`prior_weight`) can also keep its latents near its noise.
    """

    kind = "mapper"
    needs_judge = True

    def __init__(self, config: MapperConfig, recipe: Recipe, device: torch.device, total_steps: int, generator: Generator, judge: Classifier):
        super().__init__(recipe, device, total_steps)
        torch.manual_seed(recipe.seed)
        self.config = config
        self.generator = generator.to(device).eval().requires_grad_(False)
        self.judge = judge
        self.critic = judge.to(device).eval().requires_grad_(False)
        self.mapper = Mapper(config).to(device)
        self.modules = {"mapper": self.mapper}
        self.optimizers = {"mapper": make_adam(self.mapper.parameters(), recipe, device)}
        gen = torch.Generator().manual_seed(GRID_SEED)
        self.fixed_noise = torch.randn(GRID_SIZE, config.latent_dim, generator=gen).to(device)
        self.fixed_labels = torch.arange(config.num_classes).repeat(GRID_SIZE // config.num_classes).to(device)
        self.pixel_judge: PixelJudge | None = None
        self.class_latents: list[torch.Tensor] | None = None

    def _match_draws(self) -> int:
        # a short run matches few latents: it needs no more draws than ten per latent it will match
        return min(self.recipe.match_draws, 10 * self.total_steps * self.recipe.batch_size)

    def preparation(self):
        steps = []
        if self.recipe.pixel_judge_epochs:
            steps.append("training its pixel judge")
        if self.recipe.match_weight:
            steps.append(f"sorting {self._match_draws():,} draws of the generator by class")
        return " and ".join(steps) or None

    def before_training(self, train_images, train_labels):
        if self.recipe.pixel_judge_epochs:
            self.pixel_judge = train_pixel_judge(train_images, train_labels, self.config.num_classes,
                                                 self.recipe.pixel_judge_epochs, self.recipe.seed, self.device)
        if self.recipe.match_weight:
            draws = self._match_draws()
            print(f"mapper: sorting {draws:,} draws of the generator by class before the first step", flush=True)
            with self.autocast():
                self.class_latents = class_latents(self.generator, self.critic, self.pixel_judge, self.config.num_classes,
                                                   draws, self.recipe.seed, self.device)
            counts = ", ".join(f"{c}: {len(t):,}" for c, t in enumerate(self.class_latents))
            print(f"mapper: confident draws per class: {counts}", flush=True)

    def step(self, images, labels):
        self._schedule()
        noise = torch.randn(len(labels), self.config.latent_dim, generator=self.rng, device=self.device)
        z = self.mapper(labels, noise)
        with self.autocast():  # the frozen CNN's convolutions are most of the step
            generated = self.generator(z)
            fake = jitter(generated, self.recipe.augment, self.rng)
            logits = self.critic(fake)
            loss_class = F.cross_entropy(logits, labels)
            if self.pixel_judge is not None:
                loss_class = loss_class + F.cross_entropy(self.pixel_judge(fake), labels)
        generated = generated.float()
        loss_prior = (z - noise).pow(2).mean()
        loss = loss_class + self.recipe.prior_weight * loss_prior
        out = {}
        if self.class_latents is not None:
            loss_match = class_match_loss(generated, labels, self.class_latents, self.generator, self.rng)
            loss = loss + self.recipe.match_weight * loss_match
            out["loss_match"] = loss_match.detach()
        opt = self.optimizers["mapper"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        accuracy = (logits.detach().argmax(1) == labels).float().mean()
        return {"loss": loss.detach(), "loss_class": loss_class.detach(), "loss_prior": loss_prior.detach(), **out, "accuracy": accuracy}

    @torch.no_grad()
    def grid_images(self):
        self.mapper.eval()
        return self.generator.decode(self.mapper(self.fixed_labels, self.fixed_noise)).cpu()

    @torch.no_grad()
    def evaluate(self, test_images, test_labels):
        self.mapper.eval()
        labels = self._eval_labels(self.config.num_classes)
        z = self.mapper.latents(labels, generator=torch.Generator().manual_seed(EVAL_SEED))
        out = {
            **scoring.judge_checks(self.judge, self.generator.decode(z), labels),
            "latent_norm": float(z.norm(dim=1).mean() / math.sqrt(self.config.latent_dim)),
        }
        if self.pixel_judge is not None:
            images = self.generator.decode(z).to(self.device) * 2 - 1
            out["pixel_judge_accuracy"] = float((self.pixel_judge(images).argmax(1).cpu() == labels).float().mean())
        if self.class_latents is not None:
            out["matched_classes"] = sum(len(t) >= MATCH_MIN_LATENTS for t in self.class_latents)
            spread = self._spread_vs_generator(z, labels)
            if spread is not None:
                out["spread_vs_generator"] = spread
        return out

    def _spread_vs_generator(self, z: torch.Tensor, labels: torch.Tensor) -> float | None:
        """Mean over matched classes of the mapper's within-class pixel spread / that of the generator's own
        confident draws of the class (1 = as varied as the generator draws it)."""
        pools = [pool[:EVAL_SAMPLES_PER_CLASS] if len(pool) >= MATCH_MIN_LATENTS else pool[:0] for pool in self.class_latents]
        own_labels = torch.cat([torch.full((len(pool),), c) for c, pool in enumerate(pools)])
        own = class_spread(self.generator.decode(torch.cat(pools)).cpu(), own_labels, self.config.num_classes)
        mapped = class_spread(self.generator.decode(z.to(self.device)).cpu(), labels.cpu(), self.config.num_classes)
        return spread_ratios(mapped, own)[0]

    def model(self):
        return self.mapper


MATCH_CONFIDENCE = 0.9  # a prior latent joins its class's set only when the CNN is at least this sure of its image
MATCH_MIN_LATENTS = 32  # fewer confident draws of a class than this cannot stand for its distribution
MATCH_CHUNK = 500  # images per judging pass: the CNN's activations stay near 100 MB (see api.PREDICT_BATCH)


@torch.no_grad()
def class_latents(generator: Generator, critic: Classifier, pixel_judge: PixelJudge | None, num_classes: int,
                  draws: int, seed: int, device: torch.device) -> list[torch.Tensor]:
    """Prior latents whose images the CNN calls one class with at least MATCH_CONFIDENCE (and the pixel judge,
    when there is one, agrees): per class, a [n_c, latent_dim] tensor on `device`."""
    rng = torch.Generator(device=device).manual_seed(seed + 2)
    kept: list[list[torch.Tensor]] = [[] for _ in range(num_classes)]
    remaining = draws
    while remaining > 0:
        z = torch.randn(min(MATCH_CHUNK, remaining), generator.config.latent_dim, generator=rng, device=device)
        remaining -= len(z)
        images = generator(z)
        confidence, verdict = F.softmax(critic(images), dim=1).max(1)
        keep = confidence >= MATCH_CONFIDENCE
        if pixel_judge is not None:
            keep &= pixel_judge(images).argmax(1) == verdict
        for c in range(num_classes):
            kept[c].append(z[keep & (verdict == c)])
    return [torch.cat(parts) for parts in kept]


def energy_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Energy distance 2 E|x - y| - E|x - x'| - E|y - y'| between two point sets [n, d] and [m, d] (n, m >= 2):
    0 for one distribution; its -E|x - x'| term pays x for being as spread out as y."""
    def mean_distance(a: torch.Tensor, b: torch.Tensor, distinct: bool) -> torch.Tensor:
        # from squared differences: sqrt's gradient stays finite where two images are equal
        distances = (a[:, None] - b[None]).pow(2).sum(-1).clamp_min(1e-8).sqrt()
        if distinct:
            return (distances.sum() - distances.diagonal().sum()) / (len(a) * (len(a) - 1))
        return distances.mean()
    return 2 * mean_distance(x, y, False) - mean_distance(x, x, True) - mean_distance(y, y, True)


def class_match_loss(images: torch.Tensor, labels: torch.Tensor, latents: list[torch.Tensor],
                     decode: Callable[[torch.Tensor], torch.Tensor], rng: torch.Generator) -> torch.Tensor:
    """Mean over the batch's classes of the energy distance between the mapper's images of the class
    ([N, ...]) and as many of the generator's own confident images of it (`decode` of `class_latents`' latents,
    drawn at random). Matched in pixel space, where its variety shows: the generator ignores most latent
    directions, so latents can match while the images collapse. Classes with fewer than MATCH_MIN_LATENTS
    known latents (a generator that rarely draws them) are left to the judges alone."""
    flat = images.flatten(1)
    losses = []
    for c in torch.unique(labels).tolist():
        mapped, pool = flat[labels == c], latents[c]
        if len(mapped) < 2 or len(pool) < MATCH_MIN_LATENTS:
            continue
        with torch.no_grad():
            target = decode(pool[torch.randint(len(pool), (len(mapped),), generator=rng, device=pool.device)]).flatten(1)
        losses.append(energy_distance(mapped, target))
    return torch.stack(losses).mean() if losses else flat.sum() * 0.0


class LabelBatches:
    """Mapper 'epochs': `steps` batches of uniformly drawn labels (no images), fixed per (seed, epoch)."""

    def __init__(self, num_classes: int, batch_size: int, steps: int, seed: int, device: torch.device):
        self.num_classes, self.batch_size, self.steps = num_classes, batch_size, steps
        self.seed, self.device, self.epoch = seed, device, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        for _ in range(self.steps):
            yield None, torch.randint(0, self.num_classes, (self.batch_size,), generator=generator).to(self.device)
