"""GAN objectives and VAE beta: the losses as pure functions, the flags, and a tiny run of each objective."""

import math

import pytest
import torch

from train.cli import main
from train.losses import (
    coverage_loss,
    discriminator_losses,
    generator_loss,
    gradient_penalty,
    margin_cross_entropy,
    mode_seeking_loss,
    r1_penalty,
)


@pytest.mark.parametrize("objective", ["bce", "lsgan", "hinge", "wgan-gp"])
def test_a_confident_discriminator_pays_less_and_the_generator_more(objective):
    good_d = discriminator_losses(torch.full((8,), 5.0), torch.full((8,), -5.0), 0.0, objective)
    bad_d = discriminator_losses(torch.full((8,), -5.0), torch.full((8,), 5.0), 0.0, objective)
    assert sum(good_d) < sum(bad_d)
    assert generator_loss(torch.full((8,), -5.0), objective) > generator_loss(torch.full((8,), 5.0), objective)


def test_the_reports_bce_is_unchanged_and_hinge_is_zero_past_the_margin():
    real, fake = torch.tensor([0.3, 2.0]), torch.tensor([-1.0, 0.5])
    loss_real, loss_fake = discriminator_losses(real, fake, 0.1)
    assert loss_real == pytest.approx(torch.nn.functional.binary_cross_entropy_with_logits(real, torch.full((2,), 0.9)))
    assert sum(discriminator_losses(torch.full((3,), 1.5), torch.full((3,), -1.5), 0.0, "hinge")) == 0
    with pytest.raises(ValueError, match="unknown GAN objective"):
        generator_loss(real, "minimax")


def test_the_gradient_penalty_is_zero_for_a_unit_slope_critic():
    critic = lambda x: x.flatten(1)[:, 0]  # noqa: E731 - gradient norm exactly 1 everywhere
    real, fake = torch.rand(4, 1, 28, 28), torch.rand(4, 1, 28, 28)
    assert gradient_penalty(critic, real, fake, torch.Generator().manual_seed(0)).item() == pytest.approx(0.0)
    steep = lambda x: 3 * x.flatten(1)[:, 0]  # noqa: E731
    assert gradient_penalty(steep, real, fake, torch.Generator().manual_seed(0)).item() == pytest.approx(40.0)


def test_r1_is_half_the_squared_slope_of_d_at_the_real_images():
    real = torch.rand(4, 1, 28, 28, requires_grad=True)
    steep = 3 * real.flatten(1)[:, 0] - 2 * real.flatten(1)[:, 5]
    assert r1_penalty(steep, real).item() == pytest.approx(0.5 * (9 + 4))
    flat = real.flatten(1)[:, 0] * 0
    assert r1_penalty(flat, real).item() == 0.0


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["vae", "--objective", "hinge"], "--objective is for the GANs"),
        (["gan", "--beta", "4"], "--beta is for the VAEs"),
        (["cgan", "--d-steps", "0"], "--d-steps must be between 1 and 10"),
        (["cgan", "--lr-d", "nan"], "--lr-d must be between 1e-06 and 1"),
        (["gan", "--label-smoothing", "0.7"], "--label-smoothing must be in [0, 0.5)"),
        (["all", "--spectral-norm"], "--spectral-norm is for the GANs"),
        (["cgan", "--mode-seeking", "-1"], "--mode-seeking must be between 0 and 10"),
        (["vae", "--mode-seeking", "1"], "--mode-seeking is for the GANs"),
        (["cgan", "--r1", "-1"], "--r1 must be between 0 and 100"),
        (["dcgan", "--coverage", "101"], "--coverage must be between 0 and 100"),
        (["conv_vae", "--coverage", "1"], "--coverage is for the GANs"),
        (["classifier", "--r1", "1"], "--r1 is for the GANs"),
    ],
)
def test_bad_objective_flags_get_one_line(flags, message, tmp_path, capsys):
    code = main([flags[0], "--dataset", "mnist", "--run-dir", str(tmp_path / "run"), *flags[1:]])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_the_mode_seeking_term_falls_as_two_latents_images_move_apart():
    z_a, z_b = torch.zeros(4, 8), torch.ones(4, 8)
    same = torch.zeros(4, 1, 28, 28)
    apart = torch.full((4, 1, 28, 28), 0.5)
    assert mode_seeking_loss(same, apart, z_a, z_b) == pytest.approx(2.0, rel=1e-3)  # ratio 0.5 / 1
    assert mode_seeking_loss(same, same, z_a, z_b) > 1e4  # one image for two latents: a large penalty
    assert mode_seeking_loss(same, 2 * apart, z_a, z_b) < mode_seeking_loss(same, apart, z_a, z_b)


def test_the_coverage_term_is_each_real_images_distance_to_its_nearest_fake_of_its_class():
    real = torch.stack([torch.zeros(1, 2, 2), torch.ones(1, 2, 2)])  # a black and a white image
    fake = torch.stack([torch.zeros(1, 2, 2), torch.full((1, 2, 2), 0.5), torch.ones(1, 2, 2)]).requires_grad_(True)
    assert coverage_loss(real, fake).item() == pytest.approx(0.0)  # each real image has its copy among the fakes
    # the white fake is of another class than the white image: its nearest fake of its class is the grey one
    loss = coverage_loss(real, fake, torch.tensor([0, 1]), torch.tensor([0, 1, 0]))
    assert loss.item() == pytest.approx(0.25 / 2)  # (0 + 0.5^2) / 2 real images
    loss.backward()
    assert fake.grad[0].abs().sum() == 0 and fake.grad[2].abs().sum() == 0  # only the nearest fake is pulled
    assert (fake.grad[1] < 0).all()  # the grey fake, towards the white image
    lonely = coverage_loss(real, fake, torch.tensor([0, 2]), torch.tensor([0, 1, 0]))  # no fake of class 2
    assert lonely.item() == pytest.approx(0.0)
    nobody = coverage_loss(real, fake, torch.tensor([3, 2]), torch.tensor([0, 1, 0]))
    assert nobody == 0 and nobody.requires_grad


@pytest.mark.parametrize("kind", ["cgan", "gan"])
def test_with_the_coverage_term_g_is_paid_for_drawing_near_every_real_image(kind):
    from genmodels.kinds import KINDS
    from genmodels.recipes import Recipe
    from train.tasks.adversarial import AdversarialTask

    config = KINDS[kind].config_cls(g_hidden=(8,), d_hidden=(8,))
    task = AdversarialTask(kind, config, Recipe(epochs=1, batch_size=16, lr=1e-3, coverage=1.0), torch.device("cpu"), 1)
    losses = task.step(torch.rand(16, 1, 28, 28) * 2 - 1, torch.randint(0, 10, (16,)))
    assert 0 < float(losses["loss_coverage"]) < 4  # images in [-1, 1]: a per-pixel squared distance under 4


@pytest.mark.parametrize("n", [16, 15])
def test_with_mode_seeking_the_fakes_come_in_pairs_of_one_class(n):
    from genmodels.kinds import KINDS
    from genmodels.recipes import Recipe
    from train.tasks.adversarial import AdversarialTask

    config = KINDS["cgan"].config_cls(g_hidden=(8,), d_hidden=(8,))
    recipe = Recipe(epochs=1, batch_size=n, lr=1e-3, mode_seeking=1.0)
    task = AdversarialTask("cgan", config, recipe, torch.device("cpu"), total_steps=1)
    labels = task._fake_labels(n)
    half = n // 2
    assert len(labels) == n and torch.equal(labels[:half], labels[half : 2 * half])
    losses = task.step(torch.rand(n, 1, 28, 28) * 2 - 1, torch.randint(0, 10, (n,)))
    assert math.isfinite(float(losses["loss_mode_seeking"]))


@pytest.mark.parametrize("kind", ["cgan", "dcgan"])
def test_the_twin_class_head_learns_the_fakes_classes_and_g_is_paid_for_fooling_it(kind, monkeypatch):
    from genmodels.kinds import KINDS
    from genmodels.recipes import Recipe
    from train.tasks import adversarial

    small = {"cgan": dict(g_hidden=(8,), d_hidden=(8,)), "dcgan": dict(g_channels=(8, 4), d_channels=(4, 8))}[kind]
    recipe = Recipe(epochs=1, batch_size=8, lr=1e-3, precision="fp32")
    cpu = torch.device("cpu")
    plain = adversarial.AdversarialTask(kind, KINDS[kind].config_cls(**small), recipe, cpu, total_steps=1)
    config = KINDS[kind].config_cls(**small, twin_class_head=True, aux_weight=1.5)
    task = adversarial.AdversarialTask(kind, config, recipe, cpu, total_steps=1)
    images, labels = torch.rand(8, 1, 28, 28) * 2 - 1, torch.randint(0, 10, (8,))
    assert plain.discriminator(images, labels)[1].shape == (8, 10)
    assert task.discriminator(images, labels)[1].shape == (8, 20)  # the main head's logits, then the twin's
    twin_before = task.discriminator.to_class.weight[10:].clone()
    # without the adversarial term, G's loss is aux_weight * (main head's CE - twin head's CE) on its fakes
    monkeypatch.setattr(adversarial, "generator_loss", lambda logits, objective: logits.sum() * 0)
    losses = task.step(images, labels)
    assert not torch.equal(task.discriminator.to_class.weight[10:], twin_before)  # D trains the twin head
    assert float(losses["loss_d_twin"]) > 0 and float(losses["loss_g_twin"]) > 0
    assert float(losses["loss_g"]) == pytest.approx(1.5 * float(losses["loss_g_class"] - losses["loss_g_twin"]))
    assert not {"loss_d_twin", "loss_g_twin"} & plain.step(images, labels).keys()


@pytest.mark.parametrize("kind", ["cgan", "dcgan"])
def test_the_latent_read_back_trains_d_to_recover_z_and_pays_g_for_showing_it(kind, monkeypatch):
    from genmodels.kinds import KINDS
    from genmodels.recipes import Recipe
    from train.tasks import adversarial

    small = {"cgan": dict(g_hidden=(8,), d_hidden=(8,)), "dcgan": dict(g_channels=(8, 4), d_channels=(4, 8))}[kind]
    recipe = Recipe(epochs=1, batch_size=8, lr=1e-3, precision="fp32")
    config = KINDS[kind].config_cls(**small, info_dims=3, info_weight=0.5)
    task = adversarial.AdversarialTask(kind, config, recipe, torch.device("cpu"), total_steps=1)
    images, labels = torch.rand(8, 1, 28, 28) * 2 - 1, torch.randint(0, 10, (8,))
    assert task.discriminator(images, labels)[1].shape == (8, 13)  # the class logits, then the 3 read-backs
    read_back_before = task.discriminator.to_class.weight[10:].clone()
    # without the adversarial and class terms, G's loss is info_weight * the read-back's squared error
    monkeypatch.setattr(adversarial, "generator_loss", lambda logits, objective: logits.sum() * 0)
    monkeypatch.setattr(adversarial.F, "cross_entropy", lambda logits, target: logits.sum() * 0)
    losses = task.step(images, labels)
    assert not torch.equal(task.discriminator.to_class.weight[10:], read_back_before)  # D learns to read z back
    assert float(losses["loss_d_info"]) > 0 and float(losses["loss_g_info"]) > 0
    assert float(losses["loss_g"]) == pytest.approx(0.5 * float(losses["loss_g_info"]))
    with pytest.raises(ValueError, match="info_dims .* cannot exceed latent_dim"):
        KINDS[kind].config_cls(**small, info_dims=KINDS[kind].config_cls().latent_dim + 1)


def test_the_class_margin_spares_fakes_already_read_as_their_class():
    logits = torch.tensor([[6.0, 0.0, 0.0], [0.0, 2.0, 0.0]])  # the first is its class, the second is not
    labels = torch.tensor([0, 0])
    each = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    assert each[0] < 0.1 < 1.0 < each[1]
    assert margin_cross_entropy(logits, labels, 0.0) == pytest.approx(float(each.mean()))
    assert margin_cross_entropy(logits, labels, 1.0) == pytest.approx(float(each[1] - 1.0) / 2)  # the first adds 0


@pytest.mark.parametrize("kind", ["cgan", "dcgan"])
def test_a_wide_class_margin_leaves_g_only_the_adversarial_term(kind, monkeypatch):
    from genmodels.kinds import KINDS
    from genmodels.recipes import Recipe
    from train.tasks import adversarial

    small = {"cgan": dict(g_hidden=(8,), d_hidden=(8,)), "dcgan": dict(g_channels=(8, 4), d_channels=(4, 8))}[kind]
    recipe = Recipe(epochs=1, batch_size=8, lr=1e-3, precision="fp32")
    images, labels = torch.rand(8, 1, 28, 28) * 2 - 1, torch.randint(0, 10, (8,))
    adversarial_terms = []
    real_generator_loss = adversarial.generator_loss
    monkeypatch.setattr(
        adversarial,
        "generator_loss",
        lambda *a: adversarial_terms.append(real_generator_loss(*a)) or adversarial_terms[-1],
    )
    for margin, class_share in ((0.0, 1.0), (100.0, 0.0)):  # 100 nats: no fake's cross-entropy reaches it
        config = KINDS[kind].config_cls(**small, aux_weight=2.0, class_margin=margin)
        losses = adversarial.AdversarialTask(kind, config, recipe, torch.device("cpu"), total_steps=1).step(
            images, labels
        )
        assert float(losses["loss_g_class"]) > 0  # still logged as the plain cross-entropy
        expected = float(adversarial_terms[-1].detach()) + class_share * 2.0 * float(losses["loss_g_class"])
        assert float(losses["loss_g"]) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="class_margin must be >= 0"):
        KINDS[kind].config_cls(**small, class_margin=-0.1)


@pytest.mark.parametrize("objective", ["lsgan", "hinge", "wgan-gp"])
def test_each_objective_trains_and_is_recorded(objective, synthetic_data, tmp_path):
    import json

    run = tmp_path / objective
    code = main(
        [
            "cgan",
            "--dataset",
            "mnist",
            "--data",
            str(synthetic_data),
            "--run-dir",
            str(run),
            "--max-steps",
            "4",
            "--batch-size",
            "16",
            "--log-every",
            "2",
            "--objective",
            objective,
            "--d-steps",
            "2",
            "--lr-d",
            "4e-4",
            "--spectral-norm",
            "--r1",
            "2.5",
            "--model-config",
            '{"g_hidden": [32], "d_hidden": [32]}',
        ]
    )
    assert code == 0
    recipe = json.loads((run / "config.json").read_text())["recipe"]
    assert (recipe["objective"], recipe["d_steps"], recipe["lr_d"], recipe["spectral_norm"], recipe["r1_weight"]) == (
        objective,
        2,
        4e-4,
        True,
        2.5,
    )
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["loss_d"]) and math.isfinite(r["loss_g"]) for r in steps if r["type"] == "step")
    assert ("gradient_penalty" in steps[0]) == (objective == "wgan-gp")
    assert all(r["r1_penalty"] > 0 for r in steps if r["type"] == "step")


def test_a_beta_vae_with_warm_up_records_its_recipe(synthetic_data, tmp_path):
    import json

    run = tmp_path / "beta"
    code = main(
        [
            "vae",
            "--dataset",
            "mnist",
            "--data",
            str(synthetic_data),
            "--run-dir",
            str(run),
            "--max-steps",
            "3",
            "--batch-size",
            "16",
            "--beta",
            "4",
            "--kl-warmup",
            "100",
            "--model-config",
            '{"hidden": [32]}',
        ]
    )
    assert code == 0
    recipe = json.loads((run / "config.json").read_text())["recipe"]
    assert recipe["beta"] == 4 and recipe["kl_warmup_steps"] == 100


def test_one_table_of_training_options_drives_the_launcher_the_cli_and_the_recipe():
    """launch.OPTIONS is the one list: each is a TrainingOptions field, a `python -m train` flag and a Recipe field,
    and a value given through the launcher comes out as that flag."""
    import dataclasses

    from genmodels.launch import OPTIONS, TrainingOptions, check_options
    from genmodels.recipes import Recipe
    from train.cli import build_parser

    assert [f.name for f in dataclasses.fields(TrainingOptions)] == [o.name for o in OPTIONS] + ["model", "init_from"]
    flags = {action.option_strings[0] for action in build_parser()._actions if action.option_strings}
    recipe_fields = {f.name for f in dataclasses.fields(Recipe)}
    for option in OPTIONS:
        assert option.flag in flags and option.field in recipe_fields
    assert check_options("cgan", {"d_steps": 3, "spectral_norm": True}).flags() == ["--spectral-norm", "--d-steps", "3"]
    assert check_options("conv_vae", {"kl_warmup": 500}).flags() == ["--kl-warmup", "500"]
