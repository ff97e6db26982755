"""The readers behind the booster checks: UBJSON as XGBoost writes it, and any bytes or text a
tampered bundle could hold, read or refused with BundleIntegrityError — never another error."""

from __future__ import annotations

import contextlib
import io
import json
import struct
import zipfile
from typing import Any

import numpy as np
import pytest
import skops.io as sio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbops.bundle.boosters import (
    UBJReader,
    _xgboost_snapshot,
    check_lightgbm_text,
    check_xgboost_model,
)
from nbops.errors import BundleIntegrityError

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def ubjson(value: Any) -> bytes:
    """A reference UBJSON writer: XGBoost's layout (length-prefixed keys, `L` integers), with
    lists of floats as strong-typed float64 arrays."""
    if value is None:
        return b"Z"
    if value is True:
        return b"T"
    if value is False:
        return b"F"
    if isinstance(value, int):
        return b"L" + struct.pack(">q", value)
    if isinstance(value, float):
        return b"D" + struct.pack(">d", value)
    if isinstance(value, str):
        data = value.encode()
        return b"SL" + struct.pack(">q", len(data)) + data
    if isinstance(value, list):
        if value and all(isinstance(v, float) for v in value):
            return b"[$D#L" + struct.pack(">q", len(value)) + struct.pack(f">{len(value)}d", *value)
        return b"[" + b"".join(ubjson(v) for v in value) + b"]"
    out = b"{"
    for key, item in value.items():
        data = key.encode()
        out += b"L" + struct.pack(">q", len(data)) + data + ubjson(item)
    return out + b"}"


json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=20,
)


@SETTINGS
@given(value=json_like)
def test_ubjson_values_read_back_as_written(value: Any) -> None:
    assert UBJReader(ubjson(value)).document() == value


@SETTINGS
@given(data=st.binary(max_size=300))
def test_any_bytes_as_an_xgboost_model_are_read_or_refused_cleanly(data: bytes) -> None:
    with contextlib.suppress(BundleIntegrityError):
        check_xgboost_model(_xgboost_snapshot(b"{" + data))


@pytest.fixture(scope="module")
def xgboost_snapshot() -> bytes:
    """The UBJSON snapshot skops stores for a small XGBoost classifier."""
    xgb = pytest.importorskip("xgboost", reason="xgboost is not installed (nbops[boosting])")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 3))
    model = xgb.XGBClassifier(n_estimators=3, max_depth=2, n_jobs=1).fit(x, x[:, 0] > 0)
    with zipfile.ZipFile(io.BytesIO(sio.dumps(model))) as z:
        [blob] = [z.read(n) for n in z.namelist() if n.endswith(".bin")]
    return blob


def test_a_real_xgboost_snapshot_reads_as_its_json_model(xgboost_snapshot: bytes) -> None:
    model = _xgboost_snapshot(xgboost_snapshot)
    trees = model["learner"]["gradient_booster"]["model"]["trees"]
    assert len(trees) == 3 and trees[0]["left_children"][0] > 0
    check_xgboost_model(model)


@SETTINGS
@given(cut=st.integers(1, 10_000))
def test_a_truncated_xgboost_snapshot_is_refused(xgboost_snapshot: bytes, cut: int) -> None:
    data = xgboost_snapshot[: max(1, len(xgboost_snapshot) - cut)]
    with pytest.raises(BundleIntegrityError):
        check_xgboost_model(_xgboost_snapshot(data))


@SETTINGS
@given(child=st.integers(-5, 40), side=st.sampled_from(["left_children", "right_children"]))
def test_an_xgboost_child_is_accepted_only_in_range_and_once(
    xgboost_snapshot: bytes, child: int, side: str
) -> None:
    model = _xgboost_snapshot(xgboost_snapshot)
    tree = model["learner"]["gradient_booster"]["model"]["trees"][0]
    count = len(tree["left_children"])
    original = tree[side][0]
    tree[side][0] = child
    if child == original:
        check_xgboost_model(model)
    else:  # out of range, the root, or a node that already has a parent
        with pytest.raises(BundleIntegrityError):
            check_xgboost_model(model)
    assert count > 1


LIGHTGBM_TEXT = """\
tree
version=v4
max_feature_idx=1

Tree=0
num_leaves=3
num_cat=0
split_feature=0 1
threshold=0.5 1.5
decision_type=2 2
left_child=1 -1
right_child=-3 -2

end of trees
"""


def test_a_wellformed_lightgbm_text_passes() -> None:
    check_lightgbm_text(LIGHTGBM_TEXT)


@SETTINGS
@given(
    key=st.sampled_from(
        ["split_feature", "left_child", "right_child", "num_leaves", "decision_type"]
    ),
    value=st.text(alphabet="-0123456789 .", max_size=8),
)
def test_any_change_to_a_lightgbm_tree_is_accepted_or_refused_cleanly(key: str, value: str) -> None:
    lines = [
        f"{key}={value}" if line.startswith(f"{key}=") else line
        for line in LIGHTGBM_TEXT.splitlines()
    ]
    try:
        check_lightgbm_text("\n".join(lines))
    except BundleIntegrityError:
        return
    # accepted: every link and feature is in range
    tree = dict(line.split("=", 1) for line in lines if "=" in line)
    leaves = int(tree["num_leaves"])
    if leaves == 1:
        return  # a single leaf: LightGBM reads no split
    children = [int(v) for v in (tree["left_child"] + " " + tree["right_child"]).split()]
    assert all((0 < c < leaves - 1) or (c < 0 and ~c < leaves) for c in children)
    assert all(0 <= int(f) <= 1 for f in tree["split_feature"].split())


def test_a_lightgbm_model_in_json_is_refused_unless_text() -> None:
    from nbops.bundle.boosters import check_boosters

    schema = {
        "__class__": "Booster",
        "__module__": "lightgbm.basic",
        "__loader__": "ObjectNode",
        "content": {
            "__class__": "dict",
            "__module__": "builtins",
            "__loader__": "DictNode",
            "content": {"_handle": {"__loader__": "JsonNode", "content": json.dumps(["tree"])}},
        },
    }
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as z:
        z.writestr("schema.json", json.dumps(schema))
    with pytest.raises(BundleIntegrityError, match="not text"):
        check_boosters(data.getvalue())
