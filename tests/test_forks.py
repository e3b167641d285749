"""Forks: `python -m train KIND --init-from PATH` starts a new run from a parent's weights with changed settings."""

import json

import pytest
import torch

from genmodels.checkpoint import load_tensors
from genmodels.forks import check_compatible, fork_source
from train.cli import main

TINY_GAN = '{"latent_dim": 8, "g_hidden": [16], "d_hidden": [16]}'
TINY_VAE = '{"latent_dim": 4, "hidden": [16]}'


def _train(kind, data, run, *flags, config=TINY_GAN):
    return main(
        [
            kind,
            "--dataset",
            "mnist",
            "--data",
            str(data),
            "--run-dir",
            str(run),
            "--max-steps",
            "3",
            "--batch-size",
            "16",
            "--log-every",
            "1",
            "--model-config",
            config,
            *flags,
        ]
    )


@pytest.fixture
def parent(synthetic_data, tmp_path):
    """A finished tiny GAN run to fork."""
    run = tmp_path / "parent"
    assert _train("gan", synthetic_data, run) == 0
    return run


def test_a_fork_of_a_run_starts_from_every_network_and_records_its_parent(parent, synthetic_data, tmp_path):
    fork = tmp_path / "fork"
    assert (
        _train("gan", synthetic_data, fork, "--init-from", str(parent), "--objective", "hinge", "--lr-d", "1e-3") == 0
    )
    config = json.loads((fork / "config.json").read_text())
    assert config["forked_from"] == {
        "path": str(parent),
        "kind": "gan",
        "dataset": "mnist",
        "whole_state": True,
        "fresh_networks": [],
    }
    assert config["recipe"]["objective"] == "hinge" and config["recipe"]["lr_d"] == 1e-3
    records = [json.loads(line) for line in (fork / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["step"] == 1  # a fork's log starts anew at step 0


def test_a_fork_really_starts_from_the_parents_weights(parent, synthetic_data, tmp_path):
    """One step at a tiny learning rate: the fork's weights stay next to the parent's, far from a fresh init."""
    fork, fresh = tmp_path / "fork", tmp_path / "fresh"
    flags = ["--max-steps", "1", "--lr", "1e-6"]
    assert _train("gan", synthetic_data, fork, "--init-from", str(parent), "--seed", "7", *flags) == 0
    assert _train("gan", synthetic_data, fresh, "--seed", "7", *flags) == 0
    parent_state, _ = load_tensors(parent / "state.safetensors")
    fork_state, _ = load_tensors(fork / "state.safetensors")
    fresh_state, _ = load_tensors(fresh / "state.safetensors")
    name = next(k for k in parent_state if k.startswith("module.discriminator.") and k.endswith("weight"))
    assert torch.allclose(fork_state[name], parent_state[name], atol=1e-4)
    assert not torch.allclose(fresh_state[name], parent_state[name], atol=1e-2)


def test_a_fork_of_a_model_checkpoint_loads_the_served_network_and_starts_the_others_fresh(
    parent, synthetic_data, tmp_path
):
    fork = tmp_path / "fork"
    assert _train("gan", synthetic_data, fork, "--init-from", str(parent / "gan.safetensors"), "--spectral-norm") == 0
    recorded = json.loads((fork / "config.json").read_text())["forked_from"]
    assert recorded["whole_state"] is False and recorded["fresh_networks"] == ["discriminator"]


def test_a_parent_saved_before_a_config_field_existed_forks_with_its_default(parent, synthetic_data, tmp_path):
    config_file = parent / "config.json"
    config = json.loads(config_file.read_text())
    del config["model"]["negative_slope"]  # as a run written before the field was added
    config_file.write_text(json.dumps(config))
    assert _train("gan", synthetic_data, tmp_path / "fork", "--init-from", str(parent)) == 0
    with pytest.raises(ValueError, match=r"negative_slope 0\.2 -> 0\.1"):  # a changed value is still refused
        check_compatible(fork_source(parent), "gan", "mnist", {**config["model"], "negative_slope": 0.1})


@pytest.mark.parametrize("dataset", ["mnist", "fashion"])
def test_every_shipped_checkpoint_can_be_forked_with_its_own_architecture(dataset):
    """The launcher offers each shipped checkpoint as a start; the run rebuilds its config as loading does."""
    from genmodels.kinds import KINDS
    from genmodels.models.config import config_from_dict, config_to_dict
    from genmodels.paths import checkpoint_file

    shipped = [kind for kind in KINDS if checkpoint_file(kind, dataset).is_file()]
    assert {"cgan", "dcgan", "conv_vae"} <= set(shipped)
    for kind in shipped:
        source = fork_source(checkpoint_file(kind, dataset))
        config = config_to_dict(config_from_dict(KINDS[kind].config_cls, source.model))
        check_compatible(source, kind, dataset, config)


@pytest.mark.parametrize(
    ("kind", "config", "message"),
    [
        ("vae", TINY_VAE, "it is a gan, not a vae"),
        ("gan", '{"latent_dim": 8, "g_hidden": [32], "d_hidden": [16]}', "its architecture differs (g_hidden [16] ->"),
    ],
)
def test_an_incompatible_parent_gets_one_message(kind, config, message, parent, synthetic_data, tmp_path, capsys):
    code = _train(kind, synthetic_data, tmp_path / "fork", "--init-from", str(parent), config=config)
    err = capsys.readouterr().err
    assert code != 0 and message in err and "Traceback" not in err
    assert "A fork keeps its parent's kind, dataset and architecture" in err


def test_bad_fork_sources_are_refused_before_any_work(parent, tmp_path, capsys):
    for flags, message in [
        (["--init-from", str(tmp_path / "nowhere")], "not a run folder nor a .safetensors checkpoint"),
        (["--init-from", str(parent), "--resume"], "--init-from starts one new model's run"),
        (["--init-from", str(tmp_path)], "holds no finished run to start from"),
    ]:
        code = main(["gan", "--dataset", "mnist", "--run-dir", str(parent), *flags])
        err = capsys.readouterr().err
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    with pytest.raises(ValueError, match="trained on mnist, not fashion"):
        check_compatible(fork_source(parent), "gan", "fashion")
