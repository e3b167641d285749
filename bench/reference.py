"""The reference loop, written the usual way: torchvision dataset with per-image transforms, DataLoader, numpy-built
tensors.

Same model architecture, initial weights, batch size and Adam settings as the project's tasks,
built from stock torch.nn layers (`stock_copy`); the step follows the common tutorial scripts
(pytorch/examples, PyTorch-GAN): D on fake.detach(), then G with a fresh D pass, default
(non-fused) Adam, no freezing of D during G's backward.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genmodels.data import DataMissingError
from genmodels.datasets import RAW_FILES, SPLITS, dataset_info
from genmodels.kinds import KINDS, judge_kind
from genmodels.models import VAE, Classifier, CondGenerator, Dropout, Generator
from genmodels.models.conv_vae import ConvVAE
from genmodels.models.dcgan import DCGenerator
from genmodels.recipes import Recipe


def reference_loader(dataset: str, root: str, batch_size: int, kind: str) -> torch.utils.data.DataLoader:
    """torchvision's MNIST / FashionMNIST with the usual per-image transforms, shuffled, no workers."""
    from torchvision import datasets, transforms

    cls = {"mnist": datasets.MNIST, "fashion": datasets.FashionMNIST}[dataset]
    steps: list = []
    if kind == judge_kind():  # the classifier's shift jitter
        steps.append(transforms.RandomAffine(0, translate=(2 / 28, 2 / 28)))
    steps.append(transforms.ToTensor())
    if not KINDS[kind].encodes:  # the VAEs model [0, 1] pixels; the others train on [-1, 1]
        steps.append(transforms.Normalize((0.5,), (0.5,)))
    info = dataset_info(dataset)
    raw = Path(root) / info.folder / "raw"
    # torchvision opens only unpacked files, where the project's loader (which has read them already) takes .gz too
    packed = [name for split in SPLITS for name in RAW_FILES[split] if not (raw / name).exists()]
    if packed:
        raise DataMissingError(
            f"the reference loop reads {info.title} through torchvision, which needs the unpacked IDX files "
            f"{', '.join(packed)} in {raw} (gunzip the .gz there)"
        )
    data = cls(root, train=True, download=False, transform=transforms.Compose(steps))
    return torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True, num_workers=0, drop_last=True)


def stock_copy(module: nn.Module) -> nn.Module:
    """A copy of a project module as a usual script builds it: the project's CPU dropout becomes nn.Dropout (same p)."""
    stock = copy.deepcopy(module)
    for parent in list(stock.modules()):
        for name, child in parent.named_children():
            if isinstance(child, Dropout):
                setattr(parent, name, nn.Dropout(child.p))
    return stock


def _numpy_tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(array).to(device)


def _adam(params, recipe: Recipe) -> torch.optim.Optimizer:
    cls = torch.optim.AdamW if recipe.weight_decay else torch.optim.Adam
    extra = {"weight_decay": recipe.weight_decay} if recipe.weight_decay else {}
    return cls(params, lr=recipe.lr, betas=tuple(recipe.betas), **extra)


class ReferenceGAN:
    """The unconditional GAN trained like pytorch/examples (numpy noise and targets, BCEWithLogitsLoss)."""

    def __init__(self, generator: nn.Module, discriminator: nn.Module, recipe: Recipe):
        self.generator, self.discriminator, self.recipe = generator, discriminator, recipe
        self.device = next(generator.parameters()).device
        self.opt_g = _adam(generator.parameters(), recipe)
        self.opt_d = _adam(discriminator.parameters(), recipe)
        self.criterion = nn.BCEWithLogitsLoss()

    def step(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        n = images.size(0)
        real_target = _numpy_tensor(np.full(n, 1.0 - self.recipe.label_smoothing, dtype=np.float32), self.device)
        fake_target = _numpy_tensor(np.zeros(n, dtype=np.float32), self.device)
        z = _numpy_tensor(np.random.normal(0, 1, (n, self.generator.latent_dim)).astype(np.float32), self.device)
        fake = self.generator(z)
        self.opt_d.zero_grad()
        loss_d = self.criterion(self.discriminator(images), real_target) + self.criterion(
            self.discriminator(fake.detach()), fake_target
        )
        loss_d.backward()
        self.opt_d.step()
        self.opt_g.zero_grad()
        loss_g = self.criterion(self.discriminator(fake), _numpy_tensor(np.ones(n, dtype=np.float32), self.device))
        loss_g.backward()
        self.opt_g.step()
        return loss_d.item() + loss_g.item()


class ReferenceCGAN:
    """The conditional GAN (projection + auxiliary class D) trained like PyTorch-GAN's cgan.py."""

    def __init__(
        self, generator: nn.Module, discriminator: nn.Module, recipe: Recipe, aux_weight: float, num_classes: int
    ):
        self.generator, self.discriminator, self.recipe = generator, discriminator, recipe
        self.aux_weight, self.num_classes = aux_weight, num_classes
        self.device = next(generator.parameters()).device
        self.opt_g = _adam(generator.parameters(), recipe)
        self.opt_d = _adam(discriminator.parameters(), recipe)
        self.adversarial = nn.BCEWithLogitsLoss()
        self.auxiliary = nn.CrossEntropyLoss()

    def step(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        n = images.size(0)
        real_target = _numpy_tensor(np.full(n, 1.0 - self.recipe.label_smoothing, dtype=np.float32), self.device)
        fake_target = _numpy_tensor(np.zeros(n, dtype=np.float32), self.device)
        z = _numpy_tensor(np.random.normal(0, 1, (n, self.generator.latent_dim)).astype(np.float32), self.device)
        fake_labels = _numpy_tensor(np.random.randint(0, self.num_classes, n), self.device).long()
        fake = self.generator(z, fake_labels)
        self.opt_d.zero_grad()
        d_real, class_real = self.discriminator(images, labels)
        d_fake, _ = self.discriminator(fake.detach(), fake_labels)
        loss_d = (
            self.adversarial(d_real, real_target)
            + self.adversarial(d_fake, fake_target)
            + self.aux_weight * self.auxiliary(class_real, labels)
        )
        loss_d.backward()
        self.opt_d.step()
        self.opt_g.zero_grad()
        d_fake_g, class_fake = self.discriminator(fake, fake_labels)
        loss_g = self.adversarial(
            d_fake_g, _numpy_tensor(np.ones(n, dtype=np.float32), self.device)
        ) + self.aux_weight * self.auxiliary(class_fake, fake_labels)
        loss_g.backward()
        self.opt_g.step()
        return loss_d.item() + loss_g.item()


class ReferenceVAE:
    """The VAE trained like pytorch/examples/vae (ToTensor images, BCE summed + KL), plus the latent class head."""

    def __init__(self, vae: nn.Module, recipe: Recipe, class_weight: float):
        self.vae, self.class_weight = vae, class_weight
        self.opt = _adam(vae.parameters(), recipe)

    def step(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        self.opt.zero_grad()
        logits, mu, logvar, z = self.vae(images)
        recon = F.binary_cross_entropy_with_logits(logits, images, reduction="sum") / len(images)
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / len(images)
        loss = recon + kl
        if self.vae.to_class is not None:
            loss = loss + self.class_weight * F.cross_entropy(self.vae.to_class(z), labels)
        loss.backward()
        self.opt.step()
        return loss.item()


class ReferenceClassifier:
    """The CNN trained like pytorch/examples/mnist (augmentation in the dataset's transforms)."""

    def __init__(self, classifier: nn.Module, recipe: Recipe):
        self.classifier = classifier
        self.opt = _adam(classifier.parameters(), recipe)

    def step(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        self.opt.zero_grad()
        loss = F.cross_entropy(self.classifier(images), labels)
        loss.backward()
        self.opt.step()
        return loss.item()


def _gan(task) -> ReferenceGAN:
    return ReferenceGAN(stock_copy(task.generator), stock_copy(task.discriminator), task.recipe)


def _cgan(task) -> ReferenceCGAN:
    return ReferenceCGAN(
        stock_copy(task.generator),
        stock_copy(task.discriminator),
        task.recipe,
        task.config.aux_weight,
        task.config.num_classes,
    )


def _vae(task) -> ReferenceVAE:
    return ReferenceVAE(stock_copy(task.vae), task.recipe, task.config.class_weight)


def _classifier(task) -> ReferenceClassifier:
    return ReferenceClassifier(stock_copy(task.classifier), task.recipe)


# The usual-way trainers, by the network a kind trains: a kind whose network has none is not compared. The conv nets
# train like their MLP counterparts (the DCGAN with PyTorch-GAN's BCE step, as its tutorials do)
TRAINERS = {
    Generator: _gan,
    CondGenerator: _cgan,
    DCGenerator: _cgan,
    VAE: _vae,
    ConvVAE: _vae,
    Classifier: _classifier,
}


def compared_kinds() -> list[str]:
    """The kinds with a usual-way reference trainer, in registry order."""
    return [name for name, k in KINDS.items() if k.module_cls in TRAINERS]


def dropout_gan_kinds() -> list[str]:
    """The compared GANs whose discriminators carry the reports' dropout (the convolutional one has none)."""
    return [
        name
        for name in compared_kinds()
        if KINDS[name].adversarial and getattr(KINDS[name].config_cls(), "dropout", 0.0) > 0
    ]


def reference_trainer(task):
    """The usual-way trainer of a freshly built task's networks (copies of them, built from stock torch layers)."""
    return TRAINERS[KINDS[task.kind].module_cls](task)
