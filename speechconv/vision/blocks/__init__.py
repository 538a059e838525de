"""Image-only blocks: 2-D spatial helpers, neocognitron S- and C-layers, Hebbian learning."""
