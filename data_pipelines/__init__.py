"""The data side of critics: sources -> builders -> verifiers -> critique datasets.

``data_pipelines.build(config)`` runs a build described by a ``BuildConfig``. This package never
imports ``critics``.
"""

from data_pipelines.build import BuildConfig, BuildResult, build

__all__ = ["BuildConfig", "BuildResult", "build"]
