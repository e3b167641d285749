"""Training-side recipe choices: precision and compile resolution, and the shipped recipe of a kind."""

from __future__ import annotations

from genmodels.kinds import KINDS
from genmodels.kinds import kind as model_kind
from genmodels.recipes import Recipe, with_overrides

PRECISIONS = ("auto", "fp32", "bf16")


def resolve_precision(choice: str, device) -> str:
    """'auto' -> 'bf16' on a CPU with native bf16 matmuls (AVX512-BF16 or AMX, ~2x fp32 there), else 'fp32'."""
    import torch

    if choice not in PRECISIONS:
        raise ValueError(f"unknown precision {choice!r}; choose one of {', '.join(PRECISIONS)}")
    on_cpu = torch.device(device).type == "cpu"
    native_bf16 = on_cpu and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    if choice == "auto":
        return "bf16" if native_bf16 else "fp32"
    if choice == "bf16" and on_cpu and not native_bf16:
        raise ValueError("precision bf16: this CPU has no native bf16 matmuls; use fp32")
    return choice


COMPILE_CHOICES = ("auto", "on", "off")
COMPILE_KINDS = tuple(name for name, k in KINDS.items() if k.compiles)
COMPILE_MIN_STEPS = 2_000  # ~10 s of compiling pays back after a few hundred steps; short runs and tests skip it


def resolve_compile(choice: str, kind: str, device, total_steps: int) -> bool:
    """Whether a run compiles its step: 'auto' -> on the CPU for runs of at least COMPILE_MIN_STEPS steps."""
    import torch

    if choice not in COMPILE_CHOICES:
        raise ValueError(f"unknown compile choice {choice!r}; choose one of {', '.join(COMPILE_CHOICES)}")
    if choice != "off" and kind not in COMPILE_KINDS:
        if choice == "on":
            raise ValueError(f"compile on: only {', '.join(COMPILE_KINDS)} compiles its step; {kind} trains uncompiled")
        return False
    if choice == "auto":
        return torch.device(device).type == "cpu" and total_steps >= COMPILE_MIN_STEPS
    return choice == "on"


def default_recipe(kind: str, dataset: str, **overrides) -> Recipe:
    """The shipped recipe of (kind, dataset) with the given fields replaced (None values ignored)."""
    return with_overrides(model_kind(kind).recipe(dataset), **overrides)
