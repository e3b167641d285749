"""Why the classifier says what it says: Integrated Gradients (captum) of its verdict on one image."""

from __future__ import annotations

import numpy as np
import torch

from genmodels.models import Classifier

IG_STEPS = 32  # Riemann steps from the black baseline; 32 keeps the completeness error near 1% of the logit


def integrated_gradients(classifier: Classifier, image: torch.Tensor, target: int) -> np.ndarray:
    """Attribution [28, 28] of class `target`'s logit to each pixel of image [1, 1, 28, 28] in [0, 1].

    The baseline is a black image (no ink), so a positive value marks ink that argues for the class and a negative
    one ink that argues against it.
    """
    from captum.attr import IntegratedGradients  # deferred: captum's import (and matplotlib's part of it) is ~1 s

    if image.shape != (1, 1, 28, 28):
        raise ValueError(f"need one image [1, 1, 28, 28], got {tuple(image.shape)}")
    device = next(classifier.parameters()).device

    def logits(unit: torch.Tensor) -> torch.Tensor:  # the classifier reads [-1, 1]; attribute in [0, 1] pixels
        return classifier(unit * 2.0 - 1.0)

    with torch.enable_grad():
        attribution = IntegratedGradients(logits).attribute(
            image.to(device, torch.float32),
            baselines=torch.zeros(1, 1, 28, 28, device=device),
            target=target,
            n_steps=IG_STEPS,
            internal_batch_size=IG_STEPS,
        )
    return attribution.detach().reshape(28, 28).cpu().numpy()
