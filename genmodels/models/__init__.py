"""The networks, one module per family; a checkpoint's kind picks its module through genmodels.kinds."""

from genmodels.models.cgan import CGANConfig, CondDiscriminator, CondGenerator
from genmodels.models.classifier import Classifier, ClassifierConfig
from genmodels.models.config import config_from_dict, config_to_dict, count_parameters
from genmodels.models.gan import Discriminator, GANConfig, Generator
from genmodels.models.layers import IMAGE_PIXELS, IMAGE_SHAPE, Dropout, gaussian_noise, mlp
from genmodels.models.mapper import Mapper, MapperConfig
from genmodels.models.vae import VAE, VAEConfig, vae_loss

__all__ = [
    "CGANConfig",
    "CondDiscriminator",
    "CondGenerator",
    "Classifier",
    "ClassifierConfig",
    "config_from_dict",
    "config_to_dict",
    "count_parameters",
    "Discriminator",
    "GANConfig",
    "Generator",
    "IMAGE_PIXELS",
    "IMAGE_SHAPE",
    "Dropout",
    "mlp",
    "gaussian_noise",
    "Mapper",
    "MapperConfig",
    "VAE",
    "VAEConfig",
    "vae_loss",
]
