"""Research views of convolutional models (``speechconv viz``): first-layer filters, analytic and
gradient-measured receptive fields, activation maximisation, feature maps over time, saliency."""

from speechconv.viz.activations import as_map, collect_activations, plot_activations
from speechconv.viz.common import DEFAULT_FRONTEND, VizModel, load_input, load_viz_model, resolve_layer, units_of
from speechconv.viz.filters import FirstLayerFilters, first_layer_filters, normalize_patches, plot_filters, tile
from speechconv.viz.maximize import MaximizeResult, maximize_activation, plot_maximize, total_variation
from speechconv.viz.receptive_field import (
    FieldSpan,
    LayerField,
    field_span,
    gradient_support,
    layer_field,
    neuron_index,
    plot_receptive_field,
)
from speechconv.viz.saliency import Saliency, plot_saliency, saliency

__all__ = [
    "DEFAULT_FRONTEND", "FieldSpan", "FirstLayerFilters", "LayerField", "MaximizeResult", "Saliency", "VizModel",
    "as_map", "collect_activations", "field_span", "first_layer_filters", "gradient_support", "layer_field",
    "load_input", "load_viz_model", "maximize_activation", "neuron_index", "normalize_patches", "plot_activations",
    "plot_filters", "plot_maximize", "plot_receptive_field", "plot_saliency", "resolve_layer", "saliency", "tile",
    "total_variation", "units_of",
]
