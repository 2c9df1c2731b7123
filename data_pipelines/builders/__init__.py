"""Builders: source rows -> critique records, one task per module."""

from data_pipelines.builders import adversarial, code, pairwise, pointwise, reference, step  # noqa: F401
from data_pipelines.builders import polar  # noqa: F401
from data_pipelines.builders.base import BUILDERS, Builder

__all__ = ["BUILDERS", "Builder"]
