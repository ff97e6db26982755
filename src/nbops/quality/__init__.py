"""Data validation (schemas, checks, drift), slice metrics, and the inspector widget.

Pure data in, reports out: nothing here runs notebooks or writes bundles.
"""
