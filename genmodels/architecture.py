"""Model architectures as tables: each network of a model kind, its layers and parameter counts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from genmodels.kinds import KINDS, build_model
from genmodels.models import count_parameters


@dataclass
class NetworkTable:
    """One network: a title, its layer rows and its trainable parameter count."""

    title: str
    rows: list[dict[str, Any]]
    parameters: int


def describe(module: nn.Module) -> list[dict[str, Any]]:
    """One row per leaf layer: its name, type, settings and parameter count (in registration order)."""
    rows = []
    for name, layer in module.named_modules():
        if name and next(layer.children(), None) is None:
            rows.append(
                {
                    "layer": name,
                    "type": type(layer).__name__,
                    "settings": layer.extra_repr(),
                    "parameters": sum(p.numel() for p in layer.parameters(recurse=False)),
                }
            )
    return rows


def networks(kind: str, config: Any = None) -> dict[str, nn.Module]:
    """The networks of a model kind built from its config (a dict or dataclass); GANs add their discriminator.

    Only the generator is shipped (it is what samples), but the discriminator is trained from the same config.
    """
    module = build_model(kind, config)
    spec = KINDS[kind]
    built = {spec.network_title: module}
    if spec.critic_cls is not None:
        built["Discriminator (training only)"] = spec.critic_cls(module.config)
    return built


def architecture(kind: str, config: Any = None) -> list[NetworkTable]:
    """Layer tables of every network of a model kind; ValueError for an unknown kind or a bad config."""
    return [NetworkTable(title, describe(net), count_parameters(net)) for title, net in networks(kind, config).items()]
