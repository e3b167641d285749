"""The GANs: one task for the unconditional GAN (report 001), the conditional one (report 000) and the dcgan.

A conditional kind's generator and discriminator take class labels, and its discriminator also returns class
logits (projection + auxiliary class head); everything else is one step, pytorch/examples style: D on
`fake.detach()`, then G through a frozen D.

With `twin_class_head` (TAC-GAN, Gong et al. 2019), D's second head learns to tell the fakes' classes, and G's
class term is the main head's cross-entropy minus the twin's: the main head alone pays G for images at the clear
core of their class (each class drawn more alike than the real one); the twin's term cancels that pull.

With `info_dims` (InfoGAN's latent read-back, Chen et al. 2016), D's head also estimates the first info_dims of
each fake's z, and D and G both pay `info_weight` times its squared error: a G that draws one garment whatever z
says cannot be read back, so the term pays G for letting z show in the image.

With `class_margin` m > 0, G's class term counts only the fakes that D's main head reads as their class with
probability below exp(-m): a fake already clearly of its class is left to the adversarial term instead of being
pulled further to the class core.

With the recipe's `coverage` weight, each real image of the batch pulls G's nearest fake of its class towards it
(IMLE's term, `train.losses.coverage_loss`): G pays for the real images it draws nothing near, the variety that
D's verdict alone does not ask for.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from genmodels import scoring
from genmodels.kinds import GAN_LOSS_KEYS, KINDS
from genmodels.models.layers import gaussian_noise
from genmodels.recipes import Recipe
from train.ema import weight_average
from train.losses import (
    coverage_loss,
    discriminator_losses,
    generator_loss,
    gradient_penalty,
    margin_cross_entropy,
    mode_seeking_loss,
    r1_penalty,
)
from train.optim import make_adam
from train.tasks.base import EVAL_SEED, BaseTask, grid_labels, grid_noise


def with_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral normalisation on every linear, convolution and embedding layer of `module` not normalised yet."""
    for layer in list(module.modules()):
        if isinstance(layer, (nn.Linear, nn.Conv2d, nn.Embedding)) and not parametrize.is_parametrized(layer):
            spectral_norm(layer)
    return module


class AdversarialTask(BaseTask):
    """A GAN of its kind's generator and discriminator: the recipe's objective (BCE with one-sided label smoothing
    by default), D steps per G step, D's own learning rate, optional spectral norm in D and an EMA of G."""

    def __init__(self, kind: str, config, recipe: Recipe, device: torch.device, total_steps: int):
        super().__init__(kind, config, recipe, device, total_steps)
        spec = KINDS[kind]
        self.conditional = spec.conditional
        self.generator = spec.module_cls(config).to(device)
        self.discriminator = spec.critic_cls(config)
        if recipe.spectral_norm:
            with_spectral_norm(self.discriminator)
        self.discriminator.to(device)
        self.modules = {"generator": self.generator, "discriminator": self.discriminator}
        self.optimizers = {
            "generator": make_adam(self.generator.parameters(), recipe),
            "discriminator": make_adam(self.discriminator.parameters(), recipe, recipe.lr_d),
        }
        self.base_lr["discriminator"] = recipe.lr_d or recipe.lr
        self.average = weight_average(self.generator, recipe.ema_decay) if recipe.ema_decay else None
        if self.average is not None:  # saved under the generator's own tensor names, as a checkpoint holds them
            self.modules["generator_ema"] = self.average.module
        self.fixed_noise = grid_noise(config.latent_dim, device)
        self.fixed_labels = grid_labels(config.num_classes, device) if self.conditional else None

    def _conditions(self, labels: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        """The label arguments of a conditional kind's networks; none for an unconditional one."""
        return (labels,) if self.conditional else ()

    def _critic(self, images: torch.Tensor, labels: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """D's real/fake logits and, for a conditional kind, its class logits (None otherwise)."""
        if self.conditional:
            return self.discriminator(images, labels)
        return self.discriminator(images), None

    def _discriminator_step(
        self, images: torch.Tensor, labels: torch.Tensor | None
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """One D update on the real batch and fresh fakes: (D's losses and outputs, the fakes, their labels, their
        latents)."""
        n = len(images)
        objective = self.recipe.objective
        z = gaussian_noise(n, self.config.latent_dim, self.rng, self.device)
        fake_labels = self._fake_labels(n) if self.conditional else None
        real = images.detach().requires_grad_(True) if self.recipe.r1_weight else images
        with self.autocast():
            fake = self.generator(z, *self._conditions(fake_labels))
            # one D pass over real and fake: larger matmuls and no gradient accumulation across two passes
            both_labels = torch.cat([labels, fake_labels]) if self.conditional else None
            logits, classes = self._critic(torch.cat([real.to(fake.dtype), fake.detach()]), both_labels)
        d_real, d_fake = logits.float().split(n)
        loss_d_real, loss_d_fake = discriminator_losses(d_real, d_fake, self.recipe.label_smoothing, objective)
        loss_d = loss_d_real + loss_d_fake
        out = {}
        if objective == "wgan-gp":
            out["gradient_penalty"] = gradient_penalty(
                lambda x: self._critic(x, labels)[0].float(), images, fake.detach().float(), self.rng
            )
            loss_d = loss_d + out["gradient_penalty"]
        if self.recipe.r1_weight:
            out["r1_penalty"] = r1_penalty(d_real, real)
            loss_d = loss_d + self.recipe.r1_weight * out["r1_penalty"]
        if classes is not None:
            main, twin, info = self._class_heads(classes)
            out["loss_d_class"] = F.cross_entropy(main[:n], labels)
            loss_d = loss_d + self.config.aux_weight * out["loss_d_class"]
            if twin is not None:
                out["loss_d_twin"] = F.cross_entropy(twin[n:], fake_labels)
                loss_d = loss_d + self.config.aux_weight * out["loss_d_twin"]
            if info is not None:
                out["loss_d_info"] = self._info_loss(info[n:], z)
                loss_d = loss_d + self.config.info_weight * out["loss_d_info"]
        opt_d = self.optimizers["discriminator"]
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        out.update(loss_d=loss_d, d_real=torch.sigmoid(d_real).mean(), d_fake=torch.sigmoid(d_fake).mean())
        return out, fake, fake_labels, z

    def _class_heads(self, classes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """D's class head outputs in fp32, split into the main head's logits, the twin head's and the latent
        read-backs (None for a head the config has not)."""
        k, info_dims = self.config.num_classes, self.config.info_dims
        heads = classes.float().split([k, k if self.config.twin_class_head else 0, info_dims], dim=1)
        return heads[0], heads[1] if self.config.twin_class_head else None, heads[2] if info_dims else None

    def _info_loss(self, read_back: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Mean squared error of D's read-back [N, info_dims] of the fakes' latents z [N, latent_dim]."""
        return F.mse_loss(read_back, z[:, : self.config.info_dims].float())

    def _fake_labels(self, n: int) -> torch.Tensor:
        """Random classes for n fakes; with the mode-seeking term, fake i and fake n // 2 + i share theirs (the pairs
        it compares)."""
        drawn = torch.randint(0, self.config.num_classes, (n,), generator=self.rng, device=self.device)
        if not self.recipe.mode_seeking:
            return drawn
        half = n // 2
        return torch.cat([drawn[half : 2 * half], drawn[half:]])  # the first half repeats the start of the second

    @staticmethod
    def _mode_seeking(fake: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The mode-seeking term over the batch's pairs of fakes of one class (see `_fake_labels`)."""
        half = len(fake) // 2
        return mode_seeking_loss(fake[:half].float(), fake[half : 2 * half].float(), z[:half], z[half : 2 * half])

    def step(self, images, labels):
        self._schedule()
        for _ in range(self.recipe.d_steps):  # the last D update's fakes serve G's step
            losses, fake, fake_labels, z = self._discriminator_step(images, labels if self.conditional else None)
        self.discriminator.requires_grad_(False)  # G's step needs gradients through D, not of D
        with self.autocast():
            d_fake_g, class_fake = self._critic(fake, fake_labels)
        loss_g = generator_loss(d_fake_g.float(), self.recipe.objective)
        if self.recipe.mode_seeking:
            losses["loss_mode_seeking"] = self._mode_seeking(fake, z)
            loss_g = loss_g + self.recipe.mode_seeking * losses["loss_mode_seeking"]
        if self.recipe.coverage:
            condition = (labels, fake_labels) if self.conditional else ()
            losses["loss_coverage"] = coverage_loss(images.float(), fake.float(), *condition)
            loss_g = loss_g + self.recipe.coverage * losses["loss_coverage"]
        if class_fake is not None:
            main, twin, info = self._class_heads(class_fake)
            if info is not None:
                losses["loss_g_info"] = self._info_loss(info, z)
                loss_g = loss_g + self.config.info_weight * losses["loss_g_info"]
            losses["loss_g_class"] = F.cross_entropy(main, fake_labels)
            class_term = losses["loss_g_class"]
            if self.config.class_margin:
                class_term = margin_cross_entropy(main, fake_labels, self.config.class_margin)
            if twin is not None:
                losses["loss_g_twin"] = F.cross_entropy(twin, fake_labels)
                class_term = class_term - losses["loss_g_twin"]
            loss_g = loss_g + self.config.aux_weight * class_term
        opt_g = self.optimizers["generator"]
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        self.discriminator.requires_grad_(True)
        if self.average is not None:
            self.average.update_parameters(self.generator)
        losses["loss_g"] = loss_g
        order = (*GAN_LOSS_KEYS, "d_real", "d_fake")
        return {name: losses[name].detach() for name in order if name in losses}  # the order logs print them in

    def load_state(self, tensors, meta):
        super().load_state(tensors, meta)
        if self.average is not None:  # it averaged the initial weights, then once after every step
            self.average.n_averaged.fill_(self.step_count + 1)

    @torch.no_grad()
    def grid_images(self):
        return self.model().eval().decode(self.fixed_noise, *self._conditions(self.fixed_labels)).cpu()

    @torch.no_grad()
    def evaluate(self, test_images, test_labels):
        if self.judge is None:
            return {}
        num_classes = self.judge.config.num_classes
        labels = self._eval_labels(num_classes)
        z = gaussian_noise(len(labels), self.config.latent_dim, torch.Generator().manual_seed(EVAL_SEED), self.device)
        images = self.model().eval().decode(z, *self._conditions(labels.to(self.device)))
        if self.conditional:
            return scoring.judge_checks(self.judge, images, labels)
        return scoring.judge_checks(self.judge, images, None, torch.bincount(test_labels.cpu(), minlength=num_classes))

    def model(self):
        return self.average.module if self.average is not None else self.generator
