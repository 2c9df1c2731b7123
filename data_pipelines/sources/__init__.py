"""Source loaders, one per public dataset format; importing this package registers them all."""

from data_pipelines.sources import (  # noqa: F401  (registers the sources)
    code,
    generic,
    listwise,
    math,
    multimodal,  # noqa: F401
    preference,
)
from data_pipelines.sources.base import SOURCES, Row, RowError, Source

__all__ = ["SOURCES", "Row", "RowError", "Source"]
