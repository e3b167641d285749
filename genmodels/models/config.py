"""Model configs to and from JSON, checked field by field, and parameter counts."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from torch import nn


def config_to_dict(config: Any) -> dict[str, Any]:
    """A config dataclass as a JSON-ready dict."""
    return dataclasses.asdict(config)


MAX_WIDTH = 65_536  # any size field above this is a typo, and would fail later as an allocation of terabytes
FLOAT_RANGES = {  # other float fields are loss weights: >= 0
    "negative_slope": (0.0, 1.0),
    "dropout": (0.0, 0.99),
    "ceiling_quantile": (0.01, 1.0),
}
OPTIONAL_SIZES = {"refine_channels", "info_dims"}  # size fields where 0 leaves the layer out


def _check_range(name: str, key: str, value: Any) -> None:
    """Sizes lie in 1..MAX_WIDTH (0 too for OPTIONAL_SIZES); slopes and rates in FLOAT_RANGES; loss weights are not
    negative."""
    if isinstance(value, tuple):
        if not value or any(v > MAX_WIDTH for v in value):
            raise ValueError(f"{name}.{key} must list one or more sizes of at most {MAX_WIDTH:,}, got {list(value)}")
    elif isinstance(value, int):
        low = 0 if key in OPTIONAL_SIZES else 1
        if not low <= value <= MAX_WIDTH:
            raise ValueError(f"{name}.{key} must be between {low} and {MAX_WIDTH:,}, got {value}")
    else:
        low, high = FLOAT_RANGES.get(key, (0.0, math.inf))
        if not low <= value <= high:
            raise ValueError(f"{name}.{key} must be between {low:g} and {high:g}, got {value:g}")


def config_from_dict(config_cls: type, values: dict[str, Any]) -> Any:
    """Rebuild a config dataclass from JSON; unknown, ill-typed or out-of-range fields raise ValueError."""
    if not isinstance(values, dict):
        raise ValueError(f"config must be a JSON object, got {type(values).__name__}")
    names = {f.name: f for f in dataclasses.fields(config_cls)}
    unknown = set(values) - set(names)
    if unknown:
        raise ValueError(f"unknown {config_cls.__name__} fields: {', '.join(sorted(unknown))}")
    kwargs = {}
    for key, value in values.items():
        default = getattr(config_cls(), key)
        if isinstance(default, tuple):
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and v > 0 for v in value):
                raise ValueError(f"{config_cls.__name__}.{key} must be a list of positive integers")
            value = tuple(value)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ValueError(f"{config_cls.__name__}.{key} must be true or false, got {value!r}")
            kwargs[key] = value
            continue  # a switch has no range to check
        elif not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ValueError(f"{config_cls.__name__}.{key} must be a number, got {value!r}")
        elif isinstance(default, int) and not float(value).is_integer():
            raise ValueError(f"{config_cls.__name__}.{key} must be an integer, got {value!r}")
        kwargs[key] = type(default)(value)
        if isinstance(default, (int, float)) and not isinstance(default, bool) and not math.isfinite(kwargs[key]):
            raise ValueError(f"{config_cls.__name__}.{key} must be finite")
        _check_range(config_cls.__name__, key, kwargs[key])
    return config_cls(**kwargs)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
