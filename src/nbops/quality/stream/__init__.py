"""Data larger than memory: validate, slice metrics and monitor over partitioned Parquet (a
folder or a glob) or a Dask DataFrame, read in chunks with bounded memory and merged from
per-chunk statistics: exact where counts suffice, KLL quantile sketches (Apache
DataSketches, `nbops[stream]`) with their stated rank error where they do not.

- `source`: opening the input (`open_source`, `is_stream_input`) and its errors;
- `validate`: `validate` on chunks (`stream_validate`, `stream_references`);
- `slices`: `slice_metrics` on chunks (`stream_slice_metrics`);
(`nbops monitor` on chunks lives in `nbops.bundle.monitor_stream`.)
"""
