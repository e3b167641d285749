"""The registry of model kinds: every consumer derives its list of kinds from it, and each entry resolves."""

import ast
import dataclasses
from pathlib import Path

import pytest

from genmodels import kinds
from genmodels.kinds import KINDS, build_model, generator_kinds, labelling_kinds, training_order
from genmodels.paths import REPO_ROOT

SOURCE_FOLDERS = ("genmodels", "train", "views", "bench")


def python_files():
    for folder in SOURCE_FOLDERS:
        yield from sorted((REPO_ROOT / folder).rglob("*.py"))
    yield REPO_ROOT / "app.py"


def kind_name_collections(path: Path) -> list[str]:
    """Tuples, lists, sets and dict keys made of two or more kind-name literals: a second list of kinds."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        items = (
            node.elts
            if isinstance(node, (ast.Tuple, ast.List, ast.Set))
            else node.keys
            if isinstance(node, ast.Dict)
            else []
        )
        names = [i.value for i in items if isinstance(i, ast.Constant) and i.value in KINDS]
        if len(names) >= 2:
            found.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno} {names}")
    return found


def test_no_list_of_kind_names_outside_the_registry():
    found = [hit for path in python_files() if path != Path(kinds.__file__) for hit in kind_name_collections(path)]
    assert not found, "list kinds through genmodels.kinds instead:\n" + "\n".join(found)


@pytest.mark.parametrize("name", list(KINDS))
def test_each_kind_resolves_and_builds(name):
    spec = KINDS[name]
    assert spec.name == name and spec.title and spec.charts and set(spec.recipes) == {"mnist", "fashion"}
    assert dataclasses.is_dataclass(spec.config_cls)
    module = build_model(name)
    assert isinstance(module, spec.module_cls) and isinstance(module.config, spec.config_cls)
    if spec.critic_cls is not None:
        assert spec.critic_cls(module.config) is not None
    assert all(needed in KINDS for needed in spec.needs)


def test_derived_lists_agree_with_the_registry():
    assert set(training_order()) == set(KINDS)
    for name in KINDS:  # every kind trains after what it needs
        assert all(training_order().index(n) < training_order().index(name) for n in KINDS[name].needs)
    assert generator_kinds() == tuple(n for n in KINDS if KINDS[n].generates)
    for labeller, labelled in labelling_kinds().items():
        assert labeller in KINDS and KINDS[labelled].generates
    for name in generator_kinds():
        module = build_model(name)
        # a VAE takes its class in `latents` (the class Gaussians), not in `decode`
        assert module.takes_labels == (KINDS[name].conditional and not KINDS[name].encodes)


def test_consumers_list_the_registry():
    from genmodels.launch import LAUNCH_KINDS
    from train.cli import build_parser
    from train.recipes import COMPILE_KINDS

    assert set(LAUNCH_KINDS) == set(KINDS)
    assert COMPILE_KINDS == tuple(n for n in KINDS if KINDS[n].compiles)
    kind_choices = next(a.choices for a in build_parser()._actions if a.dest == "kind")
    assert set(kind_choices) == {*KINDS, "all"}


def test_unknown_kind_names_the_choices():
    with pytest.raises(ValueError, match="choose one of: cgan"):
        kinds.kind("diffusion")


def test_every_sampling_critic_is_a_kind_that_trains_after_the_generator_it_screens():
    from genmodels.kinds import screening_kinds

    assert screening_kinds() == {"dcgan_critic": "dcgan", "conv_vae_critic": "conv_vae"}
    for critic, generator in screening_kinds().items():
        assert KINDS[critic].needs == (generator,) and not KINDS[critic].generates
        assert training_order().index(critic) > training_order().index(generator)
