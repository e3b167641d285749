"""The CNN classifier of report 001: cross-entropy with Adam, shift (and flip, blur) jitter."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from genmodels.models import Classifier, ClassifierConfig
from genmodels.recipes import Recipe
from train.augment import jitter
from train.optim import make_adam
from train.tasks.base import BaseTask


class ClassifierTask(BaseTask):
    """Trains the classifier that judges every generator's samples."""

    def __init__(self, kind: str, config: ClassifierConfig, recipe: Recipe, device: torch.device, total_steps: int):
        super().__init__(kind, config, recipe, device, total_steps)
        self.classifier = Classifier(config).to(device)
        self.modules = {kind: self.classifier}  # state names: module.<kind>.*
        self.optimizers = {kind: make_adam(self.classifier.parameters(), recipe)}

    def step(self, images, labels):
        self._schedule()
        # channels-last activations: the CPU's batch norm and max-pool kernels vectorise over channels (~1.3x a step)
        inputs = jitter(images, self.recipe.augment, self.rng).to(memory_format=torch.channels_last)
        with self.autocast():
            logits = self.classifier(inputs).float()
        loss = F.cross_entropy(logits, labels)
        opt = self.optimizers[self.kind]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        accuracy = (logits.detach().argmax(1) == labels).float().mean()
        return {"loss": loss.detach(), "accuracy": accuracy}

    @torch.no_grad()
    def evaluate(self, test_images, test_labels):
        self.classifier.eval()
        losses, hits = [], 0
        for images, labels in zip(test_images.split(2000), test_labels.split(2000), strict=True):
            logits = self.classifier(images)
            losses.append(F.cross_entropy(logits, labels, reduction="sum"))
            hits += int((logits.argmax(1) == labels).sum())
        return {
            "test_loss": float(torch.stack(losses).sum()) / len(test_labels),
            "test_accuracy": hits / len(test_labels),
        }

    def model(self):
        return self.classifier
