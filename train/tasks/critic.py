"""Trains the sampling critic of a frozen generator: real train images against fresh draws of the generator, each
batch's draws of the same classes as its real images (genmodels.models.critic)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genmodels.kinds import screening_kinds
from genmodels.models.critic import SampleCritic, SampleCriticConfig, class_ceilings, keep_probability
from genmodels.recipes import Recipe
from train.optim import make_adam
from train.tasks.base import EVAL_SEED, BaseTask, load_needed, model_config

CEILING_DRAWS_PER_CLASS = 2_000  # draws whose logits set each class's acceptance ceiling once training ends
CHECK_CHUNK = 1_000  # images per pass of the epoch-end check


class CriticTask(BaseTask):
    """Fits a critic whose logit estimates log p_data(x | y) / p_generator(x | y) for a frozen generator."""

    def __init__(
        self,
        kind: str,
        config: SampleCriticConfig,
        recipe: Recipe,
        device: torch.device,
        total_steps: int,
        generator: nn.Module,
        generator_sha256: str | None = None,
    ):
        super().__init__(kind, config, recipe, device, total_steps)
        self.generator = generator.to(device).eval().requires_grad_(False)
        self.generator_sha256 = generator_sha256
        self.critic = SampleCritic(config).to(device)
        self.modules = {kind: self.critic}
        self.optimizers = {kind: make_adam(self.critic.parameters(), recipe)}

    @classmethod
    def build(cls, req, total_steps):
        """The generator it screens, from its checkpoint (required)."""
        generator, generator_meta = load_needed(req, screening_kinds()[req.kind])
        task = cls(
            req.kind,
            model_config(req),
            req.recipe,
            req.device,
            total_steps,
            generator,
            generator_sha256=generator_meta["weights_sha256"],
        )
        task.critic.to(memory_format=torch.channels_last)
        return task

    def checkpoint_metadata(self):
        return {"generator_sha256": self.generator_sha256}

    @torch.no_grad()
    def _draw(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The frozen generator's draws of classes `labels` [N], as it samples them: images [N, 1, 28, 28] in
        [-1, 1]."""
        z = self.generator.latents(len(labels), labels, generator)
        with self.autocast():
            images = self.generator.decode(z, labels)
        return images.float() * 2.0 - 1.0

    def step(self, images, labels):
        self._schedule()
        fake = self._draw(labels, self.rng)
        with self.autocast():
            logits = self.critic(torch.cat([images, fake]), torch.cat([labels, labels])).float()
        real, drawn = logits.chunk(2)
        loss = F.binary_cross_entropy_with_logits(real, torch.ones_like(real)) + F.binary_cross_entropy_with_logits(
            drawn, torch.zeros_like(drawn)
        )
        opt = self.optimizers[self.kind]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        # not d_real / d_fake: a critic that wins is what this task wants, not the GAN failure those keys flag
        return {
            "loss": loss.detach(),
            "p_real": torch.sigmoid(real.detach()).mean(),
            "p_drawn": torch.sigmoid(drawn.detach()).mean(),
        }

    @torch.no_grad()
    def _logits(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self.critic.eval()
        parts = [self.critic(x, y) for x, y in zip(images.split(CHECK_CHUNK), labels.split(CHECK_CHUNK), strict=True)]
        return torch.cat(parts).float()

    def _class_draws(self, per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.arange(self.config.num_classes, device=self.device).repeat_interleave(per_class)
        generator = torch.Generator(device=self.device).manual_seed(seed)
        return self._draw(labels, generator), labels

    @torch.no_grad()
    def evaluate(self, test_images, test_labels):
        """How often it tells test images from fresh draws, and the share of draws rejection sampling would keep
        under ceilings set from these draws."""
        fake, labels = self._class_draws(len(test_labels) // self.config.num_classes, EVAL_SEED)
        real = self._logits(test_images, test_labels.to(self.device))
        drawn = self._logits(fake, labels)
        ceilings = class_ceilings(drawn, labels, self.config.num_classes, self.config.ceiling_quantile)
        keep = keep_probability(drawn, ceilings[labels])
        return {
            "test_accuracy": float(((real > 0).float().mean() + (drawn < 0).float().mean()) / 2),
            "acceptance_rate": float(keep.mean()),
        }

    def finalize(self):
        drawn, labels = self._class_draws(CEILING_DRAWS_PER_CLASS, EVAL_SEED + 1)
        self.critic.set_ceilings(self._logits(drawn, labels), labels)

    def model(self):
        return self.critic
