"""vkpp-learning: a cross-review thematic learning repository for policing."""

__version__ = "0.1.0"
