"""gridgis maps: folium rendering of gis results (filled in by the maps issue)."""
