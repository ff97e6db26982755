"""Data larger than memory: partitioned Parquet (a folder, hive-partitioned or plain files,
or a glob) opened as a pyarrow dataset and read in record batches of the needed columns, or
a Dask DataFrame read partition by partition.

    source = open_source("data/")              # or "data/part=*/*.parquet", or a dask frame
    for chunk in source.chunks(["a", "b"]):    # pandas frames of at most CHUNK_ROWS rows
        ...

`is_stream_input(x)` says whether `x` is such an input (a folder, a path with a glob
character, or a Dask DataFrame); a plain .csv/.parquet file is not (the in-memory path reads
it). Unusable inputs raise QualityInputError (exit 26), one line naming the folder, pattern,
file or column and how to fix it: a folder with no .parquet files, a glob matching nothing,
files whose schemas disagree on a column, a column the data does not have.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbops._paths import GLOB_CHARS, is_folder_or_glob
from nbops.errors import QualityInputError

CHUNK_ROWS = 1 << 20  # rows per chunk: ~8 MiB per numeric column
_PARQUET = (".parquet", ".pq", ".parq")


def is_dask_frame(value: Any) -> bool:
    """A Dask DataFrame, told by its class's module (no dask import needed)."""
    module = type(value).__module__ or ""
    return module.split(".")[0] == "dask" and hasattr(value, "npartitions")


def is_stream_input(value: Any) -> bool:
    """A folder, a glob, or a Dask DataFrame: inputs read in chunks."""
    if is_dask_frame(value):
        return True
    return isinstance(value, str | os.PathLike) and is_folder_or_glob(value)


@dataclass
class ParquetSource:
    """Parquet files read as one dataset; `partitions` the hive partition columns."""

    where: str
    files: list[str]
    schema: Any  # pyarrow.Schema, unified: the files' columns plus partition columns
    dataset: Any  # pyarrow.dataset.Dataset
    partitions: list[str] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)

    def require(self, columns: Sequence[str], what: str) -> None:
        """Every one of `columns` is in the data, or one line naming the first missing."""
        for name in columns:
            if name not in self.schema.names:
                raise QualityInputError(
                    f"{what}: column {name!r} is not in the data (it has "
                    f"{', '.join(self.schema.names[:12])})",
                    location=self.files[0] if self.files else self.where,
                    fix=f"name a column of the data, or add {name!r} to every file",
                )

    def chunks(self, columns: Sequence[str] | None, rows: int | None = None) -> Iterator[Any]:
        """pandas frames of the `columns` (None: all), at most `rows` rows each (default
        CHUNK_ROWS), in file order; memory is one batch per reader thread."""
        rows = rows or CHUNK_ROWS
        wanted = list(self.schema.names) if columns is None else list(columns)
        import pyarrow.dataset as ds
        import pyarrow.parquet as pq

        try:
            # one file, one row group at a time (a dataset scanner reads ahead, unbounded
            # when the consumer is slower than the disk); partition keys from the path
            for i, fragment in enumerate(self.dataset.get_fragments()):
                keys = ds.get_partition_keys(fragment.partition_expression) or {}
                in_file = [c for c in wanted if c not in keys]
                with pq.ParquetFile(fragment.path) as handle:
                    for batch in handle.iter_batches(batch_size=rows, columns=in_file):
                        if not batch.num_rows:
                            continue
                        # numpy blocks made on this thread: glibc keeps freed memory per thread
                        frame = batch.to_pandas(use_threads=False)
                        for key in [c for c in wanted if c in keys]:
                            kind = self.schema.field(key).type.to_pandas_dtype()
                            frame[key] = pd_constant(keys[key], len(frame), kind)
                        yield frame[wanted]
                if i % 4 == 3:
                    _trim()
        except Exception as e:  # pyarrow's errors while reading a file
            if not type(e).__module__.startswith("pyarrow"):
                raise
            raise QualityInputError(
                f"cannot read the Parquet data ({' '.join(str(e).split())[:300]})",
                location=self.where,
                fix="check that every file is complete Parquet with the same columns",
            ) from None


@dataclass
class DaskSource:
    """A Dask DataFrame; `chunks` computes one partition at a time (for the streaming path
    without a cluster); `frame` is there for map_partitions."""

    frame: Any
    where: str = "<dask DataFrame>"

    @property
    def columns(self) -> list[str]:
        return [str(c) for c in self.frame.columns]

    def require(self, columns: Sequence[str], what: str) -> None:
        for name in columns:
            if name not in self.columns:
                raise QualityInputError(
                    f"{what}: column {name!r} is not in the Dask DataFrame",
                    location=self.where,
                    fix=f"name one of its columns ({', '.join(self.columns[:12])})",
                )

    def chunks(self, columns: Sequence[str] | None, rows: int | None = None) -> Iterator[Any]:
        rows = rows or CHUNK_ROWS
        frame = self.frame if columns is None else self.frame[list(columns)]
        for k in range(frame.npartitions):
            part = frame.get_partition(k).compute()
            for start in range(0, len(part), rows):
                yield part.iloc[start : start + rows]


Source = ParquetSource | DaskSource


def pd_constant(value: Any, n: int, dtype: Any) -> Any:
    """A column of `n` copies of a partition key's value."""
    import numpy as np

    return np.full(n, value, dtype=dtype if dtype is not object else object)


def _trim() -> None:
    """Give freed heap memory back to the system (glibc's malloc_trim): the chunks' large
    temporaries otherwise leave the heap fragmented, and the process's RSS creeps up with
    the number of chunks instead of staying at one chunk's worth."""
    global _LIBC
    if _LIBC is None:
        try:
            import ctypes

            _LIBC = ctypes.CDLL("libc.so.6")
            _LIBC.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):  # not glibc: nothing to trim
            _LIBC = False
    if _LIBC:
        _LIBC.malloc_trim(0)


_LIBC: Any = None


def open_source(value: Any) -> Source:
    """A folder, glob or Dask DataFrame as a chunked source (see the module docstring)."""
    if is_dask_frame(value):
        return DaskSource(value)
    text = os.fspath(value)
    if any(c in GLOB_CHARS for c in text) and not Path(text).is_dir():
        files = sorted(f for f in glob.glob(text, recursive=True) if Path(f).is_file())
        if not files:
            raise QualityInputError(
                "the pattern matches no file",
                location=text,
                fix="check the pattern (quote it so the shell leaves it to nbops), "
                "e.g. 'data/part=*/*.parquet'",
            )
        bad = [f for f in files if not f.lower().endswith(_PARQUET)]
        if bad:
            raise QualityInputError(
                "the pattern matches a file that is not Parquet",
                location=bad[0],
                fix="narrow the pattern to .parquet files, e.g. 'data/**/*.parquet'",
            )
        return _dataset(text, files, base=None)
    folder = Path(text)
    if not folder.is_dir():
        raise QualityInputError("no such folder", location=text, fix="check the path")
    files = sorted(
        str(p)
        for p in folder.rglob("*")
        if p.is_file()
        and p.name.lower().endswith(_PARQUET)
        and not any(part.startswith((".", "_")) for part in p.relative_to(folder).parts)
    )
    if not files:
        raise QualityInputError(
            "the folder holds no .parquet files",
            location=text,
            fix="point at the folder of the Parquet files (or a glob of them, e.g. "
            "'data/**/*.parquet')",
        )
    return _dataset(text, files, base=str(folder))


def _dataset(where: str, files: list[str], base: str | None) -> ParquetSource:
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    first: Any = None
    for f in files:
        try:
            schema = pq.read_schema(f)
        except Exception as e:
            if not (
                isinstance(e, OSError | ValueError) or type(e).__module__.startswith("pyarrow")
            ):
                raise
            raise QualityInputError(
                f"cannot read it as Parquet ({' '.join(str(e).split())[:200]})",
                location=f,
                fix="remove the file or replace it with a complete Parquet file",
            ) from None
        schema = pa.schema([fld for fld in schema if fld.name != "__index_level_0__"])
        if first is None:
            first = (f, schema)
            continue
        _same_schema(first[0], first[1], f, schema)
    assert first is not None
    partitioning = ds.HivePartitioning.discover(infer_dictionary=False)
    try:
        dataset = ds.dataset(
            files,
            format="parquet",
            partitioning=partitioning,
            partition_base_dir=base or _common_root(files),
        )
    except Exception as e:
        if not type(e).__module__.startswith("pyarrow"):
            raise
        raise QualityInputError(
            f"cannot open the Parquet files as one dataset ({' '.join(str(e).split())[:200]})",
            location=where,
            fix="give files with the same columns and partition folders",
        ) from None
    partitions = [n for n in dataset.schema.names if n not in first[1].names]
    schema = pa.schema(
        [*first[1], *(dataset.schema.field(n) for n in partitions)],
    )
    return ParquetSource(where, files, schema, dataset, partitions)


def _same_schema(first_file: str, first: Any, other_file: str, schema: Any) -> None:
    for fld in schema:
        if fld.name not in first.names:
            raise QualityInputError(
                f"column {fld.name!r} is not in {first_file}, the first file",
                location=other_file,
                fix="give files with the same columns (or select them with a glob)",
            )
        want = first.field(fld.name).type
        if fld.type != want and not (_text(fld.type) and _text(want)):
            raise QualityInputError(
                f"column {fld.name!r} is {fld.type} here but {want} in {first_file}",
                location=other_file,
                fix=f"write {fld.name!r} with one type in every file",
            )
    for name in first.names:
        if name not in schema.names:
            raise QualityInputError(
                f"column {name!r} of {first_file} is missing here",
                location=other_file,
                fix="give files with the same columns (or select them with a glob)",
            )


def _text(t: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


def _common_root(files: list[str]) -> str:
    return os.path.commonpath([str(Path(f).parent) for f in files])
