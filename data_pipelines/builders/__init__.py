"""Builders: source rows -> critique records, one task per module."""

from data_pipelines.builders import (  # noqa: F401
    adversarial,
    code,
    listwise,
    pairwise,
    pointwise,
    polar,  # noqa: F401
    reference,
    step,
)
from data_pipelines.builders.base import BUILDERS, Builder

__all__ = ["BUILDERS", "Builder"]
