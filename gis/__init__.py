"""gridgis computations: the data model, input, stores and analyses (no web, no HTML)."""

__version__ = "0.1.0"
