"""gridgis maps: self-contained HTML maps drawn from computed results (no computing here)."""
