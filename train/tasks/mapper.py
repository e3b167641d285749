"""The label mapper of report 001, question 10: class + noise -> latent of a frozen generator.

Trained through the frozen generator against two frozen judges that share nothing, the project CNN and a
pixel MLP (cross-entropy on jittered images): a latent region that fools one architecture, like a squashed 8
that the CNN calls a 9, does not fool both. Judged alone, it learns to draw nearly one convincing image per
class (0.46 of real images' within-class spread on Fashion, T-shirts 0.16). So a second term (`match_weight`)
matches, per class, its images to those the generator draws from the prior latents that the judges confidently
call that class (`class_latents`, `class_match_loss`): each class comes out about as varied as the generator
itself draws it. A penalty (`prior_weight`) can also keep its latents near its noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from genmodels import metrics, scoring
from genmodels.data import to_signed
from genmodels.kinds import labelling_kinds
from genmodels.models import IMAGE_PIXELS, Mapper, MapperConfig
from genmodels.models.layers import gaussian_noise
from genmodels.recipes import Recipe
from train.augment import jitter
from train.optim import make_adam
from train.tasks.base import (
    EVAL_SAMPLES_PER_CLASS,
    EVAL_SEED,
    JUDGE_KIND,
    BaseTask,
    grid_labels,
    grid_noise,
    load_needed,
    model_config,
)

MATCH_CONFIDENCE = 0.9  # a prior latent joins its class's set only when the CNN is at least this sure of its image
MATCH_MIN_LATENTS = 32  # fewer confident draws of a class than this cannot stand for its distribution
MATCH_CHUNK = 500  # images per judging pass: the CNN's activations stay near 100 MB (see api.PREDICT_BATCH)


class MapperTask(BaseTask):
    """Trains a mapper into the frozen generator of the kind it labels, against the frozen judges."""

    def __init__(
        self,
        kind: str,
        config: MapperConfig,
        recipe: Recipe,
        device: torch.device,
        total_steps: int,
        generator: nn.Module,
        judge: nn.Module,
        generator_sha256: str | None = None,
    ):
        super().__init__(kind, config, recipe, device, total_steps)
        self.generator = generator.to(device).eval().requires_grad_(False)
        self.generator_sha256 = generator_sha256
        self.judge = judge
        self.critic = judge.to(device).eval().requires_grad_(False)
        self.mapper = Mapper(config).to(device)
        self.modules = {kind: self.mapper}  # state names: module.<kind>.*
        self.optimizers = {kind: make_adam(self.mapper.parameters(), recipe)}
        self.fixed_noise = grid_noise(config.latent_dim, device)
        self.fixed_labels = grid_labels(config.num_classes, device)
        self.pixel_judge: PixelJudge | None = None
        self.class_latents: list[torch.Tensor] | None = None

    @classmethod
    def build(cls, req, total_steps):
        """The generator it maps into and the judge it trains against, from their checkpoints (both required)."""
        generator, generator_meta = load_needed(req, labelling_kinds()[req.kind])
        judge = load_needed(req, JUDGE_KIND)[0]
        config = model_config(req, latent_dim=generator.latent_dim)
        return cls(
            req.kind,
            config,
            req.recipe,
            req.device,
            total_steps,
            generator,
            judge,
            generator_sha256=generator_meta["weights_sha256"],
        )

    @classmethod
    def steps_per_epoch(cls, recipe, train_images):
        return recipe.steps_per_epoch  # it trains on drawn labels, not on the dataset's images

    def batches(self, train_images, train_labels):
        return LabelBatches(
            self.config.num_classes, self.recipe.batch_size, self.recipe.steps_per_epoch, self.recipe.seed, self.device
        )

    def checkpoint_metadata(self):
        return {"generator_sha256": self.generator_sha256}

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
            self.pixel_judge = train_pixel_judge(
                train_images,
                train_labels,
                self.config.num_classes,
                self.recipe.pixel_judge_epochs,
                self.recipe.seed,
                self.device,
            )
        if self.recipe.match_weight:
            draws = self._match_draws()
            print(f"{self.kind}: sorting {draws:,} draws of the generator by class before the first step", flush=True)
            with self.autocast():
                self.class_latents = class_latents(
                    self.generator,
                    self.critic,
                    self.pixel_judge,
                    self.config.num_classes,
                    draws,
                    self.recipe.seed,
                    self.device,
                )
            counts = ", ".join(f"{c}: {len(t):,}" for c, t in enumerate(self.class_latents))
            print(f"{self.kind}: confident draws per class: {counts}", flush=True)

    def step(self, images, labels):
        self._schedule()
        noise = gaussian_noise(len(labels), self.config.latent_dim, self.rng, self.device)
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
        matched = {}
        if self.class_latents is not None:
            loss_match = class_match_loss(generated, labels, self.class_latents, self.generator, self.rng)
            loss = loss + self.recipe.match_weight * loss_match
            matched["loss_match"] = loss_match.detach()
        opt = self.optimizers[self.kind]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        accuracy = (logits.detach().argmax(1) == labels).float().mean()
        return {
            "loss": loss.detach(),
            "loss_class": loss_class.detach(),
            "loss_prior": loss_prior.detach(),
            **matched,
            "accuracy": accuracy,
        }

    @torch.no_grad()
    def grid_images(self):
        self.mapper.eval()
        return self.generator.decode(self.mapper(self.fixed_labels, self.fixed_noise)).cpu()

    @torch.no_grad()
    def evaluate(self, test_images, test_labels):
        self.mapper.eval()
        labels = self._eval_labels(self.config.num_classes)
        z = self.mapper.latents(len(labels), labels, torch.Generator().manual_seed(EVAL_SEED))
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
        pools = [
            pool[:EVAL_SAMPLES_PER_CLASS] if len(pool) >= MATCH_MIN_LATENTS else pool[:0] for pool in self.class_latents
        ]
        own_labels = torch.cat([torch.full((len(pool),), c) for c, pool in enumerate(pools)])
        num_classes = self.config.num_classes
        own = metrics.class_spread(self.generator.decode(torch.cat(pools)).cpu(), own_labels, num_classes)
        mapped = metrics.class_spread(self.generator.decode(z.to(self.device)).cpu(), labels.cpu(), num_classes)
        return metrics.spread_ratios(mapped, own)[0]

    def model(self):
        return self.mapper


class PixelJudge(nn.Module):
    """A pixel MLP classifier (784-512-C): the mapper's second judge, sharing nothing with the CNN."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(IMAGE_PIXELS, 512), nn.ReLU(), nn.Linear(512, num_classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [N, 1, 28, 28] in [-1, 1] -> class logits [N, C]."""
        return self.body(images)


def train_pixel_judge(
    images: torch.Tensor, labels: torch.Tensor, num_classes: int, epochs: int, seed: int, device: torch.device
) -> PixelJudge:
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


@torch.no_grad()
def class_latents(
    generator: nn.Module,
    critic: nn.Module,
    pixel_judge: PixelJudge | None,
    num_classes: int,
    draws: int,
    seed: int,
    device: torch.device,
) -> list[torch.Tensor]:
    """Prior latents whose images the CNN calls one class with at least MATCH_CONFIDENCE (and the pixel judge,
    when there is one, agrees): per class, a [n_c, latent_dim] tensor on `device`."""
    rng = torch.Generator(device=device).manual_seed(seed + 2)
    kept: list[list[torch.Tensor]] = [[] for _ in range(num_classes)]
    remaining = draws
    while remaining > 0:
        z = gaussian_noise(min(MATCH_CHUNK, remaining), generator.config.latent_dim, rng, device)
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


def class_match_loss(
    images: torch.Tensor,
    labels: torch.Tensor,
    latents: list[torch.Tensor],
    decode: Callable[[torch.Tensor], torch.Tensor],
    rng: torch.Generator,
) -> torch.Tensor:
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
            drawn = torch.randint(len(pool), (len(mapped),), generator=rng, device=pool.device)
            target = decode(pool[drawn]).flatten(1)
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

    def __iter__(self) -> Iterator[tuple[None, torch.Tensor]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        for _ in range(self.steps):
            yield None, torch.randint(0, self.num_classes, (self.batch_size,), generator=generator).to(self.device)
