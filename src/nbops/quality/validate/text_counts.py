"""Counts of a few known short texts in an Arrow string column, without hashing the strings.

The category checks and the category drift need, per column, how many values equal each of
the schema's (and the reference's) categories, and how many are something else. Hashing
every string (`pyarrow.compute.index_in`, `Series.isin`) costs more than the rest of the
column's checks together; when every known category is at most `MAX_KNOWN_BYTES` bytes of
UTF-8 (as category labels mostly are), each value is instead read as one 64-bit word from
the Arrow buffers, a block of rows at a time, with numpy:

- the word holds the value's first 8 bytes (little-endian, read where its offset says) and
  its length `m` capped at 8: for m <= 7 the bytes past the value are shifted out and
  `m + 1` is put in the low byte, `(w << (64 - 8m)) | (m + 1)`, so two such keys are equal
  exactly when the values are (and none is 0); for m = 8 (8 bytes or more) the key is
  `w | 9`, whose low byte is 9 or more, so it equals no key of a known category (all of
  which have m <= 7, a low byte of at most 8);
- the known keys get distinct slots of a small table by a multiplicative hash
  (`(key * M) >> (64 - bits)`, `M` odd, chosen so that no two known keys share a slot and
  none takes slot 0); a value's slot is kept when the table holds the value's own key there
  and set to 0 otherwise (and for nulls), and the slots are counted by `np.bincount`.

A value counts for a known category exactly when its bytes equal the category's, as with
`index_in`. Other types (string views, dictionaries), a longer known category, or more than
`MAX_KNOWN` of them give None and the caller hashes as before.
"""

from __future__ import annotations

import random

import numpy as np

MAX_KNOWN_BYTES = 7
BLOCK = 1 << 16  # rows a block: few numpy calls (each releases the GIL), temporaries in cache
_EIGHT, _THREE = np.uint64(8), np.uint64(3)
_WORD = 2**64 - 1
MAX_KNOWN = 256  # known categories counted this way (a table of up to 2**16 slots)
_SEED = 20240601


def _key(text: bytes) -> int:
    """The 64-bit key of a value of at most 7 bytes (see the module docstring)."""
    m = len(text)
    word = int.from_bytes(text.ljust(8, b"\0"), "little")
    return ((word << (64 - 8 * m)) & _WORD) | (m + 1)


def _perfect_hash(keys: list[int]) -> tuple[int, int, np.ndarray] | None:
    """(multiplier, bits, slots): an odd multiplier giving each key its own nonzero slot of
    a table of 2**bits (about the square of the keys' number, so a random multiplier mostly
    does); None for more than `MAX_KNOWN` keys or if none is found: the caller then hashes."""
    if len(keys) > MAX_KNOWN:
        return None
    draw = random.Random(_SEED)
    bits = max(3, (len(keys) ** 2 - 1).bit_length())
    while bits <= 16:
        for _ in range(32):
            multiplier = draw.getrandbits(63) * 2 + 1
            slots = [((k * multiplier) & _WORD) >> (64 - bits) for k in keys]
            if 0 not in slots and len(set(slots)) == len(slots):
                return multiplier, bits, np.array(slots, dtype=np.intp)
        bits += 1
    return None


def known_text_counts(data: object, known: list[str]) -> np.ndarray | None:
    """For a pyarrow string or large_string (chunked) array: the non-null values' counts of
    each of `known` (distinct texts), then of every other value, as int64; None when the
    type is another one, a known text is longer than `MAX_KNOWN_BYTES` bytes or there are
    more than `MAX_KNOWN` of them."""
    import pyarrow as pa

    if isinstance(data, pa.Array):
        data = pa.chunked_array([data], type=data.type)
    if not isinstance(data, pa.ChunkedArray):
        return None
    if not (pa.types.is_string(data.type) or pa.types.is_large_string(data.type)):
        return None
    try:
        encoded = [k.encode("utf-8") for k in known]
    except UnicodeEncodeError:
        return None
    if any(len(b) > MAX_KNOWN_BYTES for b in encoded):
        return None
    counts = np.zeros(len(known) + 1, dtype=np.int64)
    if not known:
        counts[0] = len(data) - data.null_count
        return counts
    keys = [_key(b) for b in encoded]
    found = _perfect_hash(keys)
    if found is None:
        return None
    multiplier, bits, slots = found
    table = np.full(1 << bits, keys[0], dtype=np.uint64)  # a spare slot never matches
    table[slots] = keys
    by_slot = np.zeros(1 << bits, dtype=np.int64)
    for chunk in data.chunks:
        by_slot += _chunk_slots(chunk, table, np.uint64(multiplier), bits)
    counts[:-1] = by_slot[slots]
    counts[-1] = by_slot[0] - data.null_count
    return counts


def _chunk_slots(chunk: object, table: np.ndarray, multiplier: np.uint64, bits: int) -> np.ndarray:
    """Rows of one Arrow chunk by table slot (0: nulls and values of no known key)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    assert isinstance(chunk, pa.Array)
    n = len(chunk)
    out = np.zeros(table.size, dtype=np.int64)
    if not n:
        return out
    _, offset_buffer, data_buffer = chunk.buffers()
    assert offset_buffer is not None
    offset_type = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
    offsets = np.frombuffer(offset_buffer, dtype=offset_type)[chunk.offset : chunk.offset + n + 1]
    raw = (
        np.frombuffer(data_buffer, dtype=np.uint8)
        if data_buffer is not None and data_buffer.size
        else np.zeros(0, dtype=np.uint8)
    )
    valid = pc.is_valid(chunk).to_numpy(zero_copy_only=False) if chunk.null_count else None
    # Words at every byte of the buffer that has 8 bytes from there; the values starting in
    # its last 7 bytes read from a zero-padded copy of its tail
    size = raw.size
    body = np.searchsorted(offsets[:-1], size - 8, side="right") if size >= 8 else 0
    words = np.ndarray((max(size - 7, 0),), dtype="<u8", buffer=raw, strides=(1,))
    tail_base = max(size - 8, 0)
    tail = np.concatenate([raw[tail_base:], np.zeros(8, dtype=np.uint8)])
    tail_words = np.ndarray((tail.size - 7,), dtype="<u8", buffer=tail, strides=(1,))
    block = min(BLOCK, n)
    lengths = np.empty(block, dtype=np.int64)
    shifts = np.empty(block, dtype=np.uint64)
    key = np.empty(block, dtype=np.uint64)
    slot = np.empty(block, dtype=np.uint64)
    hit = np.empty(block, dtype=bool)
    down = np.uint64(64 - bits)
    for start in range(0, n, block):
        stop = min(start + block, n)
        for lo, hi, source, base in (
            (start, min(stop, body), words, 0),
            (
                max(start, body),
                stop,
                tail_words,
                tail_base,
            ),
        ):
            if hi <= lo:
                continue
            k = hi - lo
            length, shift, word, where, match = (
                lengths[:k],
                shifts[:k],
                key[:k],
                slot[:k],
                hit[:k],
            )
            starts = offsets[lo:hi]
            np.subtract(offsets[lo + 1 : hi + 1], starts, out=length)
            np.minimum(length, 8, out=length)
            word[...] = source[starts - base if base else starts]
            np.subtract(_EIGHT, length.view(np.uint64), out=shift)  # 64 - 8m: bits past it
            np.left_shift(shift, _THREE, out=shift)
            np.left_shift(word, shift, out=word)
            np.add(length, 1, out=length)
            np.bitwise_or(word, length.view(np.uint64), out=word)
            np.multiply(word, multiplier, out=where)
            np.right_shift(where, down, out=where)
            index = where.view(np.int64)
            np.equal(table.take(index, mode="clip"), word, out=match)
            if valid is not None:
                np.logical_and(match, valid[lo:hi], out=match)
            if not match.all():  # mostly every value is a known one
                np.multiply(index, match, out=index)
            out += np.bincount(index, minlength=table.size)
    return out
