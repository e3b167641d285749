"""genmodels.models: shapes, output ranges, config round trips, per-class VAE sampling."""

import pytest
import torch

from genmodels.kinds import KINDS, build_model
from genmodels.models import (
    VAE,
    CGANConfig,
    Classifier,
    ClassifierConfig,
    CondDiscriminator,
    CondGenerator,
    Discriminator,
    GANConfig,
    Generator,
    Mapper,
    MapperConfig,
    VAEConfig,
    config_from_dict,
    config_to_dict,
    count_parameters,
    vae_loss,
)
from genmodels.models.dcgan import DCGANConfig


def test_gan_shapes_and_range():
    config = GANConfig()
    generator, discriminator = Generator(config), Discriminator(config)
    images = generator(torch.randn(5, config.latent_dim))
    assert images.shape == (5, 1, 28, 28) and images.abs().max() <= 1
    assert discriminator(images).shape == (5,)
    samples = generator.decode(generator.latents(4, None, torch.Generator().manual_seed(0)))
    assert samples.shape == (4, 1, 28, 28) and 0 <= samples.min() and samples.max() <= 1


def test_cgan_shapes():
    config = CGANConfig()
    generator, discriminator = CondGenerator(config), CondDiscriminator(config)
    labels = torch.tensor([0, 3, 9])
    images = generator(torch.randn(3, config.latent_dim), labels)
    logit, class_logits = discriminator(images, labels)
    assert images.shape == (3, 1, 28, 28) and logit.shape == (3,) and class_logits.shape == (3, 10)
    with pytest.raises(ValueError, match="labels must lie in 0..9"):
        generator.decode(generator.latents(1), torch.tensor([10]))
    with pytest.raises(ValueError, match="one label per latent"):
        generator.decode(generator.latents(2))


def test_cgan_batch_norm_normalises_g_over_the_batch_in_training_and_decodes_one_image_in_eval():
    config = CGANConfig(g_hidden=(16, 32), g_batch_norm=True)
    generator = CondGenerator(config)
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in generator.modules()) == 2
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in CondGenerator(CGANConfig(g_hidden=(16, 32))).modules())
    hidden = generator.body[:2](torch.randn(64, config.latent_dim + config.embed_dim) * 5 + 3)
    assert hidden.mean(0).abs().max() < 1e-5 and (hidden.std(0, unbiased=False) - 1).abs().max() < 1e-3
    generator.eval()  # the running statistics: one image at a time decodes
    image = generator.decode(generator.latents(1), torch.tensor([4]))
    assert image.shape == (1, 1, 28, 28) and torch.isfinite(image).all()
    assert config_from_dict(CGANConfig, config_to_dict(config)).g_batch_norm is True


def test_mapper_keeps_noise_and_shapes():
    mapper = Mapper(MapperConfig())
    z = mapper.latents(2, torch.tensor([1, 2]), torch.Generator().manual_seed(0))
    assert z.shape == (2, 100)
    with pytest.raises(ValueError, match="one label per latent"):
        mapper.latents(3, torch.tensor([1, 2]))


@pytest.mark.parametrize("kind", ["cgan", "gan", "vae", "mapper"])
def test_every_latent_source_keeps_one_contract(kind):
    """latents(n, labels, generator, temperature) -> [n, L]; the same generator seed gives the same latents."""
    module = build_model(kind)
    labels = None if kind == "gan" else torch.tensor([0, 1, 2])
    draws = [module.latents(3, labels, torch.Generator().manual_seed(5), 0.5) for _ in range(2)]
    assert draws[0].shape == (3, module.config.latent_dim) and torch.equal(*draws)


def test_vae_loss_and_class_gaussians():
    vae = VAE(VAEConfig(latent_dim=4, hidden=(32,), class_weight=1.0))
    images = torch.rand(6, 1, 28, 28)
    logits, mu, logvar, z = vae(images)
    recon, kl = vae_loss(logits, images, mu, logvar)
    assert logits.shape == (6, 1, 28, 28) and mu.shape == z.shape == (6, 4)
    assert recon > 0 and kl >= 0
    assert vae.to_class(z).shape == (6, 10)
    # classes far apart in latent space: samples of a class come from its own Gaussian
    mu = torch.cat([torch.randn(50, 4) * 0.1 + 5 * c for c in range(10)])
    vae.fit_class_gaussians(mu, torch.arange(10).repeat_interleave(50))
    z = vae.latents(20, torch.full((20,), 7), torch.Generator().manual_seed(0))
    assert torch.allclose(z.mean(0), torch.full((4,), 35.0), atol=0.2)


def test_vae_loss_is_zero_kl_at_the_prior():
    mu, logvar = torch.zeros(2, 3), torch.zeros(2, 3)
    _, kl = vae_loss(torch.zeros(2, 1, 28, 28), torch.full((2, 1, 28, 28), 0.5), mu, logvar)
    assert kl.item() == pytest.approx(0.0)


def test_classifier_features_and_logits():
    classifier = Classifier(ClassifierConfig()).eval()
    images = torch.rand(3, 1, 28, 28) * 2 - 1
    assert classifier(images).shape == (3, 10)
    assert classifier.features(images).shape == (3, 256)
    probs = classifier.predict_unit((images + 1) / 2)
    assert torch.allclose(probs.sum(1), torch.ones(3))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_config_round_trip_rebuilds_the_same_shapes(kind):
    module = build_model(kind)
    rebuilt = build_model(kind, config_to_dict(module.config))
    assert {k: v.shape for k, v in module.state_dict().items()} == {k: v.shape for k, v in rebuilt.state_dict().items()}
    assert count_parameters(module) > 0


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="unknown GANConfig fields"):
        config_from_dict(GANConfig, {"latent": 3})
    with pytest.raises(ValueError, match="list of positive integers"):
        config_from_dict(GANConfig, {"g_hidden": [0]})
    with pytest.raises(ValueError, match="must be an integer"):
        config_from_dict(GANConfig, {"latent_dim": 2.5})
    with pytest.raises(ValueError, match="unknown model kind"):
        build_model("diffusion")
    assert config_from_dict(DCGANConfig, {"twin_class_head": True}).twin_class_head is True
    for not_a_switch in (1, "yes", None):
        with pytest.raises(ValueError, match="twin_class_head must be true or false"):
            config_from_dict(DCGANConfig, {"twin_class_head": not_a_switch})


def test_the_dcgan_class_norm_starts_as_batch_norm_and_survives_a_synchronised_norm():
    """class_norm: zero-initialised modulations give plain batch norm's images, and moved ones change them; the
    plain norm inside can be swapped for a synchronised one (multi-process training) without losing them."""
    from genmodels.models.dcgan import ClassBatchNorm2d, DCGenerator
    from train.distributed import _sync_batch_norm

    config = dict(latent_dim=8, embed_dim=4, g_channels=(8, 4), refine_channels=4)
    plain, modulated = DCGenerator(DCGANConfig(**config)), DCGenerator(DCGANConfig(**config, class_norm=True))
    weights = plain.state_dict()  # the same weights under the wrapped norms' names, modulations left at zero
    state = modulated.state_dict()
    modulated.load_state_dict(
        {k: v if "modulation" in k else weights[k.replace(".norm.", ".")] for k, v in state.items()}
    )
    norms = [m for m in modulated.modules() if isinstance(m, ClassBatchNorm2d)]
    assert len(norms) == 3
    z, labels = torch.randn(6, 8), torch.tensor([0, 1, 2, 3, 4, 5])
    torch.testing.assert_close(modulated(z, labels), plain(z, labels))
    for norm in norms:
        torch.nn.init.normal_(norm.modulation.weight)
    assert not torch.allclose(modulated(z, labels), plain(z, labels))
    before = modulated.eval()(z, labels)
    _sync_batch_norm(modulated, on_gpu=False)
    assert all(type(norm.norm) is not torch.nn.BatchNorm2d for norm in norms)
    torch.testing.assert_close(modulated(z, labels), before)


def test_dropout_drops_at_its_rate_and_keeps_the_mean():
    """The CPU dropout keeps ~1-p of the units, scales them by 1/(1-p), passes gradients only where kept."""
    from genmodels.models import Dropout

    torch.manual_seed(0)
    layer = Dropout(0.3)
    x = torch.ones(400, 1000, requires_grad=True)
    out = layer(x)
    kept = out != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.005
    assert torch.allclose(out[kept], torch.full_like(out[kept], 1 / 0.7))
    assert abs(out.mean().item() - 1.0) < 0.01
    out.sum().backward()
    assert torch.equal(x.grad != 0, kept)
    assert not torch.equal(layer(x), out)  # a fresh mask per call
    assert torch.equal(layer.eval()(x), x)
    with pytest.raises(ValueError, match="dropout"):
        Dropout(1.0)


def test_classifier_relu_after_pool_is_the_same_function():
    """Max-pool then ReLU equals ReLU then max-pool, so the reordered CNN loads the same weights to the same outputs."""
    torch.manual_seed(0)
    x = torch.randn(8, 16, 28, 28)
    pool, relu = torch.nn.MaxPool2d(2), torch.nn.ReLU()
    assert torch.equal(relu(pool(x)), pool(relu(x)))


def test_classifier_channels_last_activations_give_the_same_outputs_and_gradients():
    """The classifier trains on channels-last inputs (faster CPU kernels); the function and its gradients are
    unchanged."""
    from genmodels.models import Classifier, ClassifierConfig

    torch.manual_seed(0)
    model = Classifier(ClassifierConfig(dropout=0.0))
    x = torch.randn(16, 1, 28, 28)
    results = []
    for inputs in (x, x.to(memory_format=torch.channels_last)):
        model.zero_grad()
        out = model(inputs)
        out.square().sum().backward()
        results.append((out.detach(), [p.grad.clone() for p in model.parameters()]))
    (out_a, grads_a), (out_b, grads_b) = results
    assert torch.allclose(out_a, out_b, atol=1e-5)
    for grad_a, grad_b in zip(grads_a, grads_b, strict=True):
        assert torch.allclose(grad_a, grad_b, rtol=1e-4, atol=1e-4)
