"""The VAEs (report 000's MLP and the convolutional one): BCE summed over pixels + beta * KL, Adam; class
Gaussians for labelled sampling."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from genmodels import scoring
from genmodels.data import to_unit
from genmodels.kinds import KINDS
from genmodels.models import VAEConfig, vae_loss
from genmodels.models.layers import gaussian_noise
from genmodels.recipes import Recipe
from train.optim import make_adam
from train.recipes import resolve_compile
from train.tasks.base import EVAL_SEED, BaseTask, grid_noise

# the epoch-end check fits the class Gaussians to every 6th train image (10,000 of MNIST's): encoding all 60,000
# took 22 s of a conv VAE's 100 s epoch on one core; the shipped fit (finalize) takes them all
EPOCH_FIT_STRIDE = 6


class VAETask(BaseTask):
    """Trains a VAE; after the last epoch it fits a Gaussian per class to the encoded train split."""

    def __init__(self, kind: str, config: VAEConfig, recipe: Recipe, device: torch.device, total_steps: int):
        super().__init__(kind, config, recipe, device, total_steps)
        self.vae = KINDS[kind].module_cls(config).to(device)
        self.modules = {kind: self.vae}  # state names: module.<kind>.*
        self.optimizers = {kind: make_adam(self.vae.parameters(), recipe)}
        self.fixed_noise = grid_noise(config.latent_dim, device)
        self.train_images: torch.Tensor | None = None
        self.train_labels: torch.Tensor | None = None
        self.compiled = resolve_compile(recipe.compile, kind, device, total_steps)
        # compiled lazily on the first step (~10 s on 2 cores); the noise is drawn outside, from the task's generator
        self._losses_fn = torch.compile(self._losses, dynamic=False) if self.compiled else self._losses

    def prepare(self, images_uint8):
        return to_unit(images_uint8).to(self.device)

    def batches(self, train_images, train_labels):
        batches = super().batches(train_images, train_labels)
        self.train_images, self.train_labels = batches.images, batches.labels  # what the class Gaussians are fitted to
        return batches

    def kl_weight(self) -> torch.Tensor:
        """The KL term's weight at this step: the recipe's beta, ramped up from 0 over its warm-up steps (a
        tensor, so the compiled step takes each new value without recompiling)."""
        warmup = self.recipe.kl_warmup_steps
        weight = self.recipe.beta * (min(1.0, self.step_count / warmup) if warmup else 1.0)
        return torch.tensor(weight, device=self.device)

    def _losses(
        self, images: torch.Tensor, labels: torch.Tensor, noise: torch.Tensor, kl_weight: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The step's forward pass: {'loss', 'recon', 'kl'(, 'loss_class')}, each a scalar."""
        with self.autocast():
            logits, mu, logvar, z = self.vae(images, noise=noise)
            class_logits = self.vae.to_class(z) if self.vae.to_class is not None else None
        recon, kl = vae_loss(logits.float(), images, mu, logvar)
        losses = {"loss": recon + kl_weight * kl, "recon": recon, "kl": kl}
        if class_logits is not None:
            losses["loss_class"] = F.cross_entropy(class_logits.float(), labels)
            losses["loss"] = losses["loss"] + self.config.class_weight * losses["loss_class"]
        return losses

    def step(self, images, labels):
        self._schedule()
        noise = gaussian_noise(len(images), self.config.latent_dim, self.rng, self.device)
        try:
            losses = self._losses_fn(images, labels, noise, self.kl_weight())
        except Exception as exc:  # noqa: BLE001 - no C++ compiler, an unsupported op...: train on uncompiled
            if not self.compiled:
                raise
            self.compile_failure = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            self.compiled, self._losses_fn = False, self._losses
            losses = self._losses(images, labels, noise, self.kl_weight())
        opt = self.optimizers[self.kind]
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        opt.step()
        return {name: value.detach() for name, value in losses.items()}

    @torch.no_grad()
    def grid_images(self):
        self.vae.eval()
        return self.vae.decode(self.fixed_noise).cpu()

    @torch.no_grad()
    def fit_classes(self, stride: int = 1) -> None:
        """Fit the VAE's per-class Gaussians to the encoded means of the train split (every `stride`-th image)."""
        self.vae.eval()
        images, labels = self.train_images[::stride], self.train_labels[::stride]
        mu = torch.cat([self.vae.encode(chunk)[0] for chunk in images.split(5000)])
        self.vae.fit_class_gaussians(mu, labels)

    @torch.no_grad()
    def evaluate(self, test_images, test_labels):
        self.vae.eval()
        gen = torch.Generator(device=self.device).manual_seed(EVAL_SEED)
        recon_sum = kl_sum = 0.0
        for chunk in test_images.split(2000):
            # under the run's precision: a third of the fp32 pass's time, at a neg-ELBO within 0.01 nats of it
            # (docs/model_zoo.md); `evaluate` stays fp32
            with self.autocast():
                logits, mu, logvar, _ = self.vae(chunk, generator=gen)
            recon, kl = vae_loss(logits.float(), chunk, mu.float(), logvar.float())
            recon_sum += float(recon) * len(chunk)
            kl_sum += float(kl) * len(chunk)
        out = {"test_recon": recon_sum / len(test_images), "test_kl": kl_sum / len(test_images)}
        out["test_neg_elbo"] = out["test_recon"] + out["test_kl"]
        if self.judge is not None and self.train_images is not None:
            self.fit_classes(EPOCH_FIT_STRIDE)
            labels = self._eval_labels(self.config.num_classes)
            draws = torch.Generator().manual_seed(EVAL_SEED)
            images = self.vae.decode(self.vae.latents(len(labels), labels.to(self.device), draws))
            out.update(scoring.judge_checks(self.judge, images, labels))
        return out

    def finalize(self):
        self.fit_classes()

    def model(self):
        return self.vae
