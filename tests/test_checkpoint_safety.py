"""Checkpoints are never unpickled, and every kind of bad file is refused with one clear error naming it."""

from __future__ import annotations

import json
import os
import pickle
import re
import struct
import zipfile
from pathlib import Path

import pytest
import torch

from genmodels import api
from genmodels.checkpoint import CheckpointError, load_model, load_tensors, save_model, save_tensors
from genmodels.kinds import build_model
from genmodels.paths import REPO_ROOT
from genmodels.runs import check_run_name, run_path

# Built from pieces so this file does not match its own patterns.
UNSAFE_PATTERNS = {
    "torch.load without weights_only=True": re.compile(r"torch\.load\((?![^)]*weights_only\s*=\s*True)"),
    "pickle.load": re.compile(r"\b(c?pickle|dill|joblib|cloudpickle)\.loads?\("),
    "np.load with allow_pickle=True": re.compile(r"\b(np|numpy)\.load\([^)]*allow_pickle\s*=\s*True"),
    "pickle.Unpickler": re.compile(r"\bUnpickler\("),
}
SKIPPED_DIRS = {".venv", ".git", "node_modules", "__pycache__", ".hypothesis"}


def unsafe_calls(source: str) -> list[str]:
    """The names of the unpickling patterns found in a piece of Python source."""
    return [name for name, pattern in UNSAFE_PATTERNS.items() if pattern.search(source)]


def project_python_files() -> list[Path]:
    """Every .py file of the project (not the virtual environment or caches)."""
    files = []
    for folder, dirs, names in os.walk(REPO_ROOT):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS and not d.startswith(".")]
        files += [Path(folder) / n for n in names if n.endswith(".py")]
    return files


def test_scanner_flags_each_unpickling_call():
    """The scanner recognises each unsafe loading call and accepts the safe forms."""
    assert unsafe_calls("x = torch.load" + "(f)") == ["torch.load without weights_only=True"]
    assert unsafe_calls("x = torch.load" + "(f, map_location='cpu', weights_only=True)") == []
    assert unsafe_calls("x = pickle.load" + "(f)") == ["pickle.load"]
    assert unsafe_calls("x = pickle.loads" + "(b)") == ["pickle.load"]
    assert unsafe_calls("x = np.load" + "(f, allow_pickle=True)") == ["np.load with allow_pickle=True"]
    assert unsafe_calls("x = np.load" + "(f)") == []


def test_no_project_file_unpickles():
    """No project .py file unpickles: no bare torch.load, no pickle loads, no numpy loads that allow pickles."""
    files = project_python_files()
    assert any(p.name == "checkpoint.py" for p in files), "the scan must cover genmodels/"
    offenders = {
        str(p.relative_to(REPO_ROOT)): found for p in files if (found := unsafe_calls(p.read_text(errors="replace")))
    }
    assert offenders == {}


class _PlantMarker:
    """Unpickling this object creates a marker file: proof that the pickle ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture
def marker(tmp_path):
    """A file path that only a successful exploit creates."""
    return tmp_path / "PWNED"


def test_malicious_plain_pickle_is_refused_without_running(tmp_path, marker):
    """A pickle planted where a checkpoint is expected is refused with CheckpointError and never runs."""
    planted = tmp_path / "checkpoints" / "mnist" / "vae.safetensors"
    planted.parent.mkdir(parents=True)
    planted.write_bytes(pickle.dumps(_PlantMarker(marker)))
    with pytest.raises(CheckpointError) as info:
        api.load_generator("vae", "mnist", root=tmp_path / "checkpoints", device="cpu")
    assert info.value.path == planted
    assert "vae.safetensors" in str(info.value)
    assert not marker.exists()


def test_malicious_torch_save_file_is_refused_without_running(tmp_path, marker):
    """A torch.save zip (pickle inside) with a payload is refused and never runs."""
    planted = tmp_path / "gan.safetensors"
    torch.save({"weights": _PlantMarker(marker)}, planted)
    assert zipfile.is_zipfile(planted)
    with pytest.raises(CheckpointError):
        load_model(planted, kind="gan", dataset="mnist")
    with pytest.raises(CheckpointError):
        api.load_generator("gan", "mnist", checkpoint=planted, device="cpu")
    assert not marker.exists()


def test_pickle_in_metadata_is_not_unpickled(tmp_path, marker):
    """A pickle hidden in the metadata header is treated as malformed text, never executed."""
    path = tmp_path / "vae.safetensors"
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(path), metadata={"genmodels": pickle.dumps(_PlantMarker(marker)).hex()})
    with pytest.raises(CheckpointError, match="metadata"):
        load_model(path)
    assert not marker.exists()


@pytest.fixture
def good_vae(tmp_path):
    """A valid tiny MNIST VAE checkpoint."""
    path = tmp_path / "vae.safetensors"
    save_model(path, build_model("vae", {"latent_dim": 4, "hidden": [16]}), "vae", "mnist")
    return path


def assert_one_clear_error(path: Path, reason: str, **load_args):
    """load_model(path) raises exactly one CheckpointError naming the file and matching `reason`."""
    with pytest.raises(CheckpointError) as info:
        load_model(path, **load_args)
    message = str(info.value)
    assert str(path) in message
    assert re.search(reason, message, re.IGNORECASE), message
    assert "\n" not in message
    assert info.value.__cause__ is None


def test_good_checkpoint_loads(good_vae):
    """The reference checkpoint used below loads and has its metadata."""
    module, meta = load_model(good_vae, kind="vae", dataset="mnist")
    assert meta["kind"] == "vae" and module.latent_dim == 4


def test_missing_file_is_named(tmp_path):
    """A missing checkpoint is a CheckpointError naming the path."""
    assert_one_clear_error(tmp_path / "nope.safetensors", "not found")


def test_zero_byte_file_is_refused(good_vae):
    """A zero-byte checkpoint is refused as empty."""
    good_vae.write_bytes(b"")
    assert_one_clear_error(good_vae, "empty")


@pytest.mark.parametrize("keep", [8, 100, 0.5, -1])
def test_truncated_file_is_refused(good_vae, keep):
    """A checkpoint cut short anywhere (header length, header, tensors) is refused."""
    data = good_vae.read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else (len(data) + keep if keep < 0 else keep)
    good_vae.write_bytes(data[:cut])
    assert_one_clear_error(good_vae, "truncated|not a readable")


def test_absurd_header_length_is_refused(good_vae):
    """A header that claims to be huge is refused without allocating it."""
    data = good_vae.read_bytes()
    good_vae.write_bytes(struct.pack("<Q", 2**62) + data[8:])
    assert_one_clear_error(good_vae, "not a readable")


def test_hash_mismatch_is_refused(good_vae):
    """One flipped weight byte fails the sha256 check."""
    data = bytearray(good_vae.read_bytes())
    data[-5] ^= 0xFF
    good_vae.write_bytes(bytes(data))
    assert_one_clear_error(good_vae, "sha256")


def test_wrong_kind_is_refused(good_vae):
    """A VAE file asked for as a GAN names both kinds."""
    assert_one_clear_error(good_vae, "'vae' model, not 'gan'", kind="gan")


def test_wrong_dataset_is_refused(good_vae):
    """An MNIST file asked for as Fashion-MNIST names both datasets."""
    assert_one_clear_error(good_vae, "'mnist', not 'fashion'", kind="vae", dataset="fashion")


def test_wrong_shape_is_refused(tmp_path):
    """Weights whose shapes disagree with the config in the header are refused (hash valid)."""
    vae = build_model("vae", {"latent_dim": 4, "hidden": [16]})
    tensors = dict(vae.state_dict())
    tensors["to_stats.weight"] = torch.zeros(8, 17)
    path = tmp_path / "vae.safetensors"
    save_tensors(path, tensors, {"kind": "vae", "dataset": "mnist", "config": {"latent_dim": 4, "hidden": [16]}})
    assert_one_clear_error(path, r"to_stats\.weight is \(8, 17\)", kind="vae")


def test_missing_tensor_is_refused(tmp_path):
    """A file lacking one of the model's tensors names it."""
    tensors = dict(build_model("gan", {"latent_dim": 8, "g_hidden": [16]}).state_dict())
    del tensors["to_pixels.bias"]
    path = tmp_path / "gan.safetensors"
    save_tensors(path, tensors, {"kind": "gan", "dataset": "mnist", "config": {"latent_dim": 8, "g_hidden": [16]}})
    assert_one_clear_error(path, "to_pixels.bias")


def test_huge_config_in_header_is_refused_without_allocating(tmp_path):
    """A header whose config asks for a terabyte model is refused by shape, not built in memory."""
    small = build_model("gan", {"latent_dim": 8, "g_hidden": [16]})
    path = tmp_path / "gan.safetensors"
    save_tensors(
        path,
        small.state_dict(),
        {"kind": "gan", "dataset": "mnist", "config": {"latent_dim": 8, "g_hidden": [2_000_000_000]}},
    )
    assert_one_clear_error(path, "at most 65,536")


@pytest.mark.parametrize(
    "config", [{"latent_dim": -3}, {"latent_dim": "8"}, {"latent_dim": 8, "evil": 1}, "not a dict"]
)
def test_malformed_config_in_header_is_refused(tmp_path, config):
    """Negative, ill-typed, unknown or non-object configs in the header are refused clearly."""
    small = build_model("gan", {"latent_dim": 8, "g_hidden": [16]})
    path = tmp_path / "gan.safetensors"
    save_tensors(path, small.state_dict(), {"kind": "gan", "dataset": "mnist", "config": config})
    assert_one_clear_error(path, "cannot rebuild|needs")


def test_unknown_kind_in_header_is_refused(tmp_path):
    """A header naming a kind that does not exist is refused."""
    path = tmp_path / "x.safetensors"
    save_tensors(path, {"w": torch.zeros(1)}, {"kind": "os.system", "dataset": "mnist", "config": {}})
    assert_one_clear_error(path, "cannot rebuild")


def test_non_finite_weights_are_refused(tmp_path):
    """A checkpoint whose weights hold NaN (a diverged run) is refused instead of drawing NaN images."""
    gan = build_model("gan", {"latent_dim": 8, "g_hidden": [16]})
    with torch.no_grad():
        gan.to_pixels.bias[3] = float("nan")
    path = tmp_path / "gan.safetensors"
    save_tensors(
        path, gan.state_dict(), {"kind": "gan", "dataset": "mnist", "config": {"latent_dim": 8, "g_hidden": [16]}}
    )
    assert_one_clear_error(path, "non-finite|NaN", kind="gan")


def test_non_finite_weights_are_never_saved_over_a_good_file(good_vae):
    """save_model refuses a diverged model, so the last good checkpoint stays in place."""
    before = good_vae.read_bytes()
    vae = build_model("vae", {"latent_dim": 4, "hidden": [16]})
    with torch.no_grad():
        vae.to_pixels.weight[0, 0] = float("inf")
    with pytest.raises(CheckpointError, match="non-finite"):
        save_model(good_vae, vae, "vae", "mnist")
    assert good_vae.read_bytes() == before


def test_sidecar_edits_do_not_change_what_loads(good_vae):
    """The JSON sidecar is informational: editing it cannot redirect the load to another kind."""
    sidecar = good_vae.with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**meta, "kind": "gan"}))
    assert load_model(good_vae, kind="vae")[1]["kind"] == "vae"


def test_directory_in_place_of_checkpoint_is_refused(tmp_path):
    """A folder where the file should be is a clear not-found error."""
    folder = tmp_path / "vae.safetensors"
    folder.mkdir()
    assert_one_clear_error(folder, "not found")


def test_load_tensors_does_not_follow_pickle_even_in_copy(tmp_path, marker, good_vae):
    """A pickle appended after valid safetensors data is rejected, never run."""
    data = good_vae.read_bytes() + pickle.dumps(_PlantMarker(marker))
    good_vae.write_bytes(data)
    try:
        load_tensors(good_vae)
    except CheckpointError:
        pass
    assert not marker.exists()


# ----------------------------------------------------------------------------- run names and paths

HOSTILE_NAMES = [
    "../escape",
    "..",
    ".",
    "a/../../etc",
    "/etc/passwd",
    "/tmp",
    "run/sub",
    "run\\sub",
    "run\x00.txt",
    "\x00",
    "",
    " ",
    "run name",
    "-rf",
    ".hidden",
    "a" * 101,
    "a" * 10_000,
    "run\n",
    "run\r\nx",
    "run\t",
    "ｒｕｎ",
    "run\u202egnp.exe",
    "rün",
    "run\u200b",
    "ＡＢＣ",
    "..\u2215etc",
    "runﹳ",
    "\u0430dmin",
    "C:\\Windows",
    "~root",
    "$HOME",
    "run;rm -rf /",
    "`id`",
    "run*",
    "%2e%2e%2f",
    None,
    42,
    b"run",
    ["run"],
]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=lambda n: repr(n)[:30])
def test_hostile_run_names_are_refused(tmp_path, name):
    """Traversal, absolute paths, NUL bytes, control characters, very long names and unicode lookalikes raise
    ValueError."""
    with pytest.raises(ValueError):
        check_run_name(name)
    with pytest.raises(ValueError):
        run_path(name, tmp_path)


@pytest.mark.parametrize("name", ["run1", "vae-mnist-20250101-120000-abc123", "a", "A.b_c-9", "x" * 100])
def test_ordinary_run_names_stay_inside_the_runs_folder(tmp_path, name):
    """Valid names map to a direct child of the runs folder."""
    path = run_path(name, tmp_path)
    assert path.parent == tmp_path.resolve() and path.name == name


def test_symlinked_run_folder_cannot_escape(tmp_path):
    """A run folder that is a symlink to elsewhere is refused by run_path."""
    runs = tmp_path / "runs"
    runs.mkdir()
    (tmp_path / "outside").mkdir()
    (runs / "sneaky").symlink_to(tmp_path / "outside")
    with pytest.raises(ValueError, match="escapes"):
        run_path("sneaky", runs)
