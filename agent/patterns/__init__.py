"""Apparel pattern files (AAMA/ASTM D6673 DXF) read, placed and compiled on the station."""
