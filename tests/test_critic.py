"""The sampling critic: its acceptance rule, rejection sampling through it, and loading it beside its generator."""

import pytest
import torch
from torch import nn

from genmodels import api
from genmodels.checkpoint import CheckpointError, save_model
from genmodels.kinds import build_model
from genmodels.models.critic import SampleCritic, SampleCriticConfig, class_ceilings, keep_probability
from tests.conftest import TINY_CONFIGS


def test_keep_probability_is_the_density_ratio_capped_at_the_ceiling():
    logits = torch.tensor([-3.0, -1.0, 0.5, 2.0])
    kept = keep_probability(logits, torch.full((4,), 0.5))
    assert torch.allclose(kept, torch.tensor([torch.exp(torch.tensor(-3.5)), torch.exp(torch.tensor(-1.5)), 1, 1]))


def test_strictness_raises_the_density_ratio_to_its_power():
    logits, ceilings = torch.tensor([-3.0, -1.0, 0.5, 2.0]), torch.full((4,), 0.5)
    exact = keep_probability(logits, ceilings)
    assert torch.allclose(keep_probability(logits, ceilings, 2.0), exact**2)
    assert torch.allclose(keep_probability(logits, ceilings, 0.5), exact.sqrt())
    assert keep_probability(logits, ceilings, 4.0)[2:].tolist() == [1.0, 1.0]  # at or above the ceiling: kept


def test_ceilings_are_each_class_s_quantile():
    logits = torch.cat([torch.arange(100.0), 1000 + torch.arange(100.0)])
    labels = torch.cat([torch.zeros(100), torch.ones(100)]).long()
    ceilings = class_ceilings(logits, labels, 2, 0.8)
    assert ceilings.tolist() == pytest.approx([79.2, 1079.2])
    with pytest.raises(ValueError, match="class 2"):
        class_ceilings(logits, labels, 3, 0.8)
    critic = SampleCritic(SampleCriticConfig(num_classes=2, channels=(2, 4)))
    critic.set_ceilings(logits, labels)
    assert torch.equal(critic.ceilings, ceilings)


class SignGenerator(nn.Module):
    """A stand-in generator: the image of a latent is its first coordinate everywhere (through a sigmoid)."""

    latent_dim = 3
    takes_labels = True

    def latents(self, n, labels, generator, temperature=1.0):
        return torch.randn(n, self.latent_dim, generator=generator) * temperature

    def decode(self, z, labels):
        return torch.sigmoid(z[:, :1, None, None].expand(-1, 1, 28, 28))


class BrightCritic:
    """Keeps bright images always and dark ones never (or, with `none`, nothing at all)."""

    def __init__(self, none=False):
        self.none = none

    def acceptance(self, images, labels, strictness=1.0):
        bright = images.mean(dim=(1, 2, 3)) > 0.5
        return torch.zeros(len(images)) if self.none else bright.float()


def test_rejection_sampling_keeps_only_what_the_critic_accepts_and_is_seeded():
    labels = torch.arange(10).repeat(20)
    z = api.screened_latents(SignGenerator(), BrightCritic(), labels, api.seeded_generator(0), 1.0)
    assert z.shape == (200, 3) and (z[:, 0] > 0).all()
    again = api.screened_latents(SignGenerator(), BrightCritic(), labels, api.seeded_generator(0), 1.0)
    assert torch.equal(z, again)
    other = api.screened_latents(SignGenerator(), BrightCritic(), labels, api.seeded_generator(1), 1.0)
    assert not torch.equal(z, other)


def test_a_critic_that_accepts_nothing_still_gives_every_latent():
    z = api.screened_latents(
        SignGenerator(), BrightCritic(none=True), torch.zeros(7).long(), api.seeded_generator(0), 1.0
    )
    assert z.shape == (7, 3) and torch.isfinite(z).all()


def save_tiny(folder, kind, dataset="mnist", ceiling=None, **extra):
    module = build_model(kind, TINY_CONFIGS[kind])
    if ceiling is not None:  # a critic whose cap lies above its logits: it rejects some draws
        module.ceilings.fill_(ceiling)
    save_model(folder / f"{kind}.safetensors", module, kind, dataset, **extra)
    return folder / f"{kind}.safetensors"


def test_the_critic_beside_a_generator_screens_its_draws(tmp_path):
    from genmodels.checkpoint import read_metadata

    torch.manual_seed(0)
    generator_file = save_tiny(tmp_path, "dcgan")
    sha = read_metadata(generator_file)["weights_sha256"]
    raw = api.load_generator("dcgan", "mnist", checkpoint=generator_file)
    assert raw.critic is None
    save_tiny(tmp_path, "dcgan_critic", ceiling=1.0, generator_sha256=sha)
    model = api.load_generator("dcgan", "mnist", checkpoint=generator_file)
    assert model.critic is not None
    screened = model.sample(8, 3, seed=0)
    assert screened.labels.tolist() == [3] * 8
    assert torch.equal(screened.images, model.decode(screened.latents, screened.labels))  # latents stay the truth
    assert not torch.equal(screened.images, raw.sample(8, 3, seed=0).images)
    assert torch.equal(model.without_critic().sample(8, 3, seed=0).images, raw.sample(8, 3, seed=0).images)
    assert model.critic is not None  # without_critic leaves the model itself as it was
    strict = model.with_strictness(4.0)
    assert strict.strictness == 4.0 and model.strictness == 1.0
    assert not torch.equal(strict.sample(8, 3, seed=0).images, screened.images)
    assert torch.equal(model.with_strictness(1).sample(8, 3, seed=0).images, screened.images)
    for bad in (0.1, 9, float("nan"), True, "2"):
        with pytest.raises(ValueError, match="strictness must be"):
            model.with_strictness(bad)
    with pytest.raises(ValueError, match="no sampling critic"):
        raw.with_strictness(2.0)
    unlabelled = model.sample(6, None, seed=0)
    assert len(unlabelled.labels) == 6  # the dcgan decodes with a class: drawn from the seed


def test_a_critic_trained_for_other_weights_is_a_clear_error(tmp_path):
    torch.manual_seed(0)
    generator_file = save_tiny(tmp_path, "dcgan")
    save_tiny(tmp_path, "dcgan_critic", generator_sha256="0" * 64)
    with pytest.raises(CheckpointError, match="another generator"):
        api.load_generator("dcgan", "mnist", checkpoint=generator_file)


def test_the_conv_vae_s_screened_unconditional_draws_carry_no_labels(tmp_path):
    from genmodels.checkpoint import read_metadata

    torch.manual_seed(0)
    generator_file = save_tiny(tmp_path, "conv_vae")
    save_tiny(tmp_path, "conv_vae_critic", generator_sha256=read_metadata(generator_file)["weights_sha256"])
    model = api.load_generator("conv_vae", "mnist", checkpoint=generator_file)
    drawn = model.sample(5, None, seed=0)
    assert drawn.labels is None and drawn.images.shape == (5, 1, 28, 28)
    assert model.sample(5, 2, seed=0).labels.tolist() == [2] * 5


def test_the_critic_task_learns_then_caps_each_class_at_its_80th_percentile():
    from genmodels.recipes import Recipe
    from train.tasks.critic import CriticTask

    torch.manual_seed(0)
    generator = build_model("dcgan", TINY_CONFIGS["dcgan"])
    config = SampleCriticConfig(channels=(2, 4))
    recipe = Recipe(epochs=1, batch_size=20, lr=1e-3)
    task = CriticTask("dcgan_critic", config, recipe, torch.device("cpu"), 10, generator)
    real, labels = torch.rand(20, 1, 28, 28) * 2 - 1, torch.arange(10).repeat(2)
    losses = task.step(real, labels)
    assert set(losses) == {"loss", "p_real", "p_drawn"} and torch.isfinite(losses["loss"])
    checks = task.evaluate(real, labels)
    assert 0 <= checks["test_accuracy"] <= 1 and 0 < checks["acceptance_rate"] <= 1
    assert not task.critic.ceilings.any()  # set only once training ends
    task.finalize()
    fresh = torch.arange(10).repeat_interleave(500)
    images = generator.decode(generator.latents(len(fresh), fresh, torch.Generator().manual_seed(7)), fresh)
    always_kept = (task.critic.acceptance(images, fresh) == 1).float().mean()
    assert 0.15 < always_kept < 0.25  # the draws at or above their class's 80th percentile
