"""critics: build critique datasets, train critic models, serve them as rewards."""

__version__ = "0.1.0"
