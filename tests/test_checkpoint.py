"""genmodels.checkpoint: round trip, metadata, atomic writes."""

import json

import torch

from genmodels.checkpoint import load_model, read_metadata, save_model, sidecar_path, update_metadata
from genmodels.kinds import build_model


def test_round_trip_rebuilds_the_module(tmp_path):
    torch.manual_seed(0)
    module = build_model("cgan", {"latent_dim": 8, "g_hidden": [16], "d_hidden": [16]})
    path = tmp_path / "mnist" / "cgan.safetensors"
    meta = save_model(path, module, "cgan", "mnist", recipe={"seed": 3}, metrics={"class_accuracy": 0.5})
    loaded, loaded_meta = load_model(path, kind="cgan", dataset="mnist")
    assert loaded_meta == meta and loaded_meta["recipe"] == {"seed": 3}
    assert loaded.config == module.config and not loaded.training
    for name, tensor in module.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name])
    assert json.loads(sidecar_path(path).read_text())["weights_sha256"] == meta["weights_sha256"]
    assert [p.name for p in path.parent.iterdir()] and not list(path.parent.glob("*.tmp"))


def test_update_metadata_keeps_weights_and_merges(tmp_path):
    module = build_model("classifier", {"channels": [2, 4], "hidden": 8})
    path = tmp_path / "classifier.safetensors"
    before = save_model(path, module, "classifier", "fashion", metrics={"test_accuracy": 0.9})
    after = update_metadata(path, metrics={"test_loss": 0.3}, evaluation={"fid": 1.0})
    assert after["weights_sha256"] == before["weights_sha256"]
    assert read_metadata(path)["metrics"] == {"test_accuracy": 0.9, "test_loss": 0.3}
    assert read_metadata(path)["evaluation"] == {"fid": 1.0}
    load_model(path, kind="classifier", dataset="fashion")


def test_loading_every_kind_stays_off_torch_dynamo(tmp_path):
    """The meta-device shape check must not import torch._dynamo (~1.7 s and ~100 MB on the app's first page)."""
    import subprocess
    import sys
    from pathlib import Path

    script = (
        "import sys, torch\n"
        "from genmodels.checkpoint import load_model, save_model\n"
        "from genmodels.kinds import KINDS, build_model\n"
        "for kind in KINDS:\n"
        f"    path = {str(tmp_path)!r} + f'/{{kind}}.safetensors'\n"
        "    save_model(path, build_model(kind), kind, 'mnist')\n"
        "    load_model(path, kind=kind)\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"


def test_shipped_generators_are_the_generator_kinds_with_a_file_for_the_dataset(tmp_path):
    from genmodels.checkpoint import shipped_generators

    assert shipped_generators("mnist", tmp_path) == ()
    (tmp_path / "mnist").mkdir()
    for kind in ("conv_vae", "cgan", "classifier"):
        (tmp_path / "mnist" / f"{kind}.safetensors").write_bytes(b"broken or not, it is shipped")
    assert shipped_generators("mnist", tmp_path) == ("cgan", "conv_vae")  # page order; the classifier is no generator
    assert shipped_generators("fashion", tmp_path) == ()


def test_load_vae_loads_any_vae_kind_and_refuses_a_gan(tiny_checkpoints):
    import pytest

    from genmodels import api
    from genmodels.models.conv_vae import ConvVAE

    vae = api.load_vae("fashion", root=tiny_checkpoints, device="cpu", kind="conv_vae")
    assert isinstance(vae, ConvVAE) and api.encode(vae, torch.rand(3, 28, 28)).shape == (3, vae.latent_dim)
    with pytest.raises(ValueError, match="dcgan has no encoder; choose one of: vae, conv_vae"):
        api.load_vae("fashion", root=tiny_checkpoints, kind="dcgan")
