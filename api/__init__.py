"""gridgis front doors: the command line (and, later, the HTTP API)."""
