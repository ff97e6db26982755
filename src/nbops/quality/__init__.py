"""Data validation (schemas, checks, drift), slice metrics, and the inspection report.

Pure data in, reports out: nothing here runs notebooks, records runs or writes bundles (the
notebook-facing functions that do, and the inspector widget, are in nbops.workbench).
"""
