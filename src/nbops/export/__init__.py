"""Turning an analysed notebook into a versioned, importable pipeline package."""
