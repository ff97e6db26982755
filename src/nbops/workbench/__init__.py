"""The notebook-facing API that combines the layers below it: `nbops.validate`,
`nbops.slice_metrics` and `nbops.infer_schema` (quality functions whose reports are recorded
in the current run: api.py), and the inspector (`nbops.inspect`, `nbops.inspection`: checks,
slices and gates as a report and a widget whose button builds a bundle: inspector.py).

It sits above bundle, runs and quality, which never import it. Nothing is imported here:
`import nbops` stays light.
"""
