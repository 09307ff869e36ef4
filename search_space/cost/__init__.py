"""Cost of an architecture: analytic counts, and the hook-based count that checks them."""

from .analytic import count_cost
from .records import Cost, LayerCost

__all__ = ["count_cost", "count_with_hooks", "Cost", "LayerCost"]


def count_with_hooks(model, input_shape):
    """Count ops by forward hooks on a built model (see ``search_space.cost.hooks``)."""
    from .hooks import count_with_hooks as _count

    return _count(model, input_shape)
