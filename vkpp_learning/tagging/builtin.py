"""Imports the built-in taggers so their @register decorators run (the registry imports this module)."""

from vkpp_learning.tagging import base, detectors, embedding, ensemble, rules, supervised  # the learned taggers

__all__ = ["base", "detectors", "embedding", "ensemble", "rules", "supervised"]
