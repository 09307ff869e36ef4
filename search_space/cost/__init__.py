"""Cost of an architecture: analytic counts and energy, and the hook-based count that checks them."""

from .analytic import count_cost
from .energy import Energy, MemoryPlan
from .hooks import count_with_hooks
from .profiles import DEFAULT_PROFILE, HardwareProfile, load_profile, profile_names
from .records import Cost, LayerCost

__all__ = ["count_cost", "count_with_hooks", "Cost", "LayerCost", "Energy", "MemoryPlan",
           "HardwareProfile", "load_profile", "profile_names", "DEFAULT_PROFILE"]
