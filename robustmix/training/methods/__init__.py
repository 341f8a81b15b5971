"""Training methods: ERM and the mixing methods, each a pure function returning soft targets.

    registry.py   METHODS (name -> method, a plain dict), options, `apply_method`, `soft_cross_entropy`
    mixing.py     ERM, mixup (and its ablations), CutMix, Manifold Mixup, the Puzzle Mix entry point
    puzzlemix.py  Puzzle Mix (Kim et al. 2020): saliency, graph-cut masks, transport
    graphcut.py   the alpha-beta swap graph cut Puzzle Mix's masks come from

May import: runtime, models (the model's stages for Manifold Mixup).
"""

from .registry import (
    METHODS,
    Method,
    apply_method,
    get_method,
    method_options,
    network_passes,
    soft_cross_entropy,
)

__all__ = ["METHODS", "Method", "apply_method", "get_method", "method_options", "network_passes", "soft_cross_entropy"]
