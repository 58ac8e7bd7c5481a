"""flowax.models: pure model definitions (``Model(init, apply)``), parametrizations, teachers."""

from ._model import ACTIVATIONS, PARAMETRIZATIONS, Model, get_activation
from .flax_adapter import from_flax
from .linear import deep_linear, end_to_end
from .mean_field import particles_to_two_layer, two_layer_to_particles
from .mlp import mlp, two_layer
from .resnet import depth_rates, layer_labels, resnet, resnet_field, smooth_weights
from .teachers import Dataset, linear_teacher, multi_index_teacher

__all__ = [
    "ACTIVATIONS",
    "PARAMETRIZATIONS",
    "Dataset",
    "Model",
    "deep_linear",
    "depth_rates",
    "end_to_end",
    "from_flax",
    "get_activation",
    "layer_labels",
    "linear_teacher",
    "mlp",
    "multi_index_teacher",
    "particles_to_two_layer",
    "resnet",
    "resnet_field",
    "smooth_weights",
    "two_layer",
    "two_layer_to_particles",
]
