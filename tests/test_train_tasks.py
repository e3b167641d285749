"""The training side follows the registry: every kind's task resolves and trains, and train/ names no kind itself."""

import ast
import json
from pathlib import Path

import pytest

from genmodels.checkpoint import load_model
from genmodels.kinds import KINDS, resolve, training_order
from genmodels.paths import REPO_ROOT
from genmodels.runs import RunFolder, read_metrics
from tests.conftest import TINY_CONFIGS
from train.tasks.base import BaseTask


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_s_task_resolves_to_a_task_class(kind):
    task = resolve(KINDS[kind].task)
    assert isinstance(task, type) and issubclass(task, BaseTask)


def test_a_tiny_run_of_every_kind_trains_in_training_order(synthetic_data, tmp_path, monkeypatch):
    """Each kind trains a few steps through `python -m train`, reading the checkpoints of this same run that it needs,
    and writes its log, grids (for kinds that draw them), model and state."""
    import torch

    import train.run
    from train.cli import main

    monkeypatch.setattr(train.run.StopFlag, "install", lambda self: None)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    monkeypatch.setenv("GENMODELS_DATA", str(synthetic_data))
    monkeypatch.setenv("GENMODELS_CHECKPOINTS", str(tmp_path / "no_checkpoints"))
    for kind in training_order():
        folder = RunFolder(tmp_path / kind)
        needs = [
            flag
            for name in KINDS[kind].needs
            for flag in (f"--{name}", str(RunFolder(tmp_path / name).model_file(name)))
        ]
        argv = [
            kind,
            "--dataset",
            "mnist",
            "--max-steps",
            "3",
            "--batch-size",
            "50",
            "--device",
            "cpu",
            "--log-every",
            "1",
            "--run-dir",
            str(folder.path),
            "--model-config",
            json.dumps(TINY_CONFIGS[kind]),
            *needs,
        ]
        assert main(argv) == 0, kind
        records = read_metrics(folder.metrics_file)
        assert [r["step"] for r in records if r["type"] == "step"] == [1, 2, 3]
        assert records[-1]["type"] == "final"
        _, meta = load_model(folder.model_file(kind), kind=kind, dataset="mnist")
        assert meta["steps_trained"] == 3 and folder.state_file.is_file()


def test_train_names_no_kind_itself():
    """Which kinds exist, what they need and which task trains them come from genmodels.kinds: no module of the
    training side spells a kind's name as a string."""
    spelled = []
    for path in sorted((Path(REPO_ROOT) / "train").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in KINDS:
                spelled.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno} {node.value!r}")
    assert not spelled


def test_a_resumed_gan_task_averages_its_weights_like_an_unbroken_one():
    """The weight average's count of updates is not in the state (which keeps the generator's tensor names): the
    task restores it from its step count, so the warm-up goes on where it stopped."""
    import torch

    from genmodels.models import GANConfig
    from train.recipes import default_recipe
    from train.tasks.adversarial import AdversarialTask

    recipe = default_recipe("gan", "mnist", precision="fp32")
    assert recipe.ema_decay

    def fresh():
        task = AdversarialTask(
            "gan", GANConfig(latent_dim=8, g_hidden=(16,), d_hidden=(16,)), recipe, torch.device("cpu"), total_steps=10
        )
        task.train_mode()
        return task

    images, labels = torch.rand(20, 1, 28, 28) * 2 - 1, torch.arange(20) % 10
    unbroken = fresh()
    for _ in range(3):
        unbroken.step(images, labels)
    tensors, meta = unbroken.state()
    assert not any(".module." in name or "n_averaged" in name for name in tensors)
    resumed = fresh()
    resumed.load_state({name: tensor.clone() for name, tensor in tensors.items()}, meta)
    dropout_rng = torch.get_rng_state()
    for task in (unbroken, resumed):
        torch.set_rng_state(dropout_rng)
        task.step(images, labels)
    for a, b in zip(unbroken.model().parameters(), resumed.model().parameters(), strict=True):
        assert torch.equal(a, b)
