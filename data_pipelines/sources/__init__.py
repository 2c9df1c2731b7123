"""Source loaders, one per public dataset format; importing this package registers them all."""

from data_pipelines.sources import code, generic, math, preference  # noqa: F401  (registers the sources)
from data_pipelines.sources import multimodal  # noqa: F401
from data_pipelines.sources.base import SOURCES, Row, RowError, Source

__all__ = ["SOURCES", "Row", "RowError", "Source"]
