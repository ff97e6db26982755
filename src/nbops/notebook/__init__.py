"""Reading notebooks, the cell-tag vocabulary and the analysis of what flows between steps.

This package knows nothing of runs, bundles or the CLI.
"""
