"""The bundle core: build, load, predict, and every way a bundle is refused."""

from __future__ import annotations

import builtins
import hashlib
import io
import json
import os
import pickle
import shutil
import tarfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.tree import DecisionTreeClassifier

from nbops.bundle.allowlist import check_tree_bounds, is_allowed, trusted_types
from nbops.bundle.archive import pack, unpack
from nbops.bundle.load import load_bundle
from nbops.bundle.manifest import BundleManifest, ServingSpec
from nbops.errors import BundleError, BundleIntegrityError, BundleVersionError

from .conftest import Built, rows

# -- build and predict ---------------------------------------------------------------------------


def test_build_writes_the_bundle_and_its_archive(built: Built) -> None:
    folder = built.folder
    assert folder.name == "tiny-v1"
    assert (built.out / "tiny-v1.tar.gz").is_file()
    manifest = BundleManifest.from_json((folder / "manifest.json").read_text())
    on_disk = sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p != folder / "manifest.json" and "__pycache__" not in p.parts
    )
    assert sorted(manifest.files) == on_disk
    for rel, sha in manifest.files.items():
        assert hashlib.sha256((folder / rel).read_bytes()).hexdigest() == sha
    assert {"model.skops", "schema.json", "reference_stats.json", "requirements.lock"} <= set(
        manifest.files
    )
    assert "code/tiny/transform.py" in manifest.files
    assert "code/test_pipeline.py" in manifest.files
    assert manifest.model.serializer == "skops"
    assert manifest.model.class_name == "sklearn.pipeline.Pipeline"
    assert manifest.model.sha256 == manifest.files["model.skops"]
    serving = manifest.serving
    assert (serving.step, serving.package, serving.module, serving.function, serving.input) == (
        "transform:features",
        "tiny",
        "transform",
        "features",
        "raw",
    )
    assert serving.request_columns == ["a", "b", "c"] and serving.label == "label"
    assert manifest.output.prediction == "class" and manifest.output.classes == [0, 1]
    assert manifest.source.metrics == {"accuracy": 0.9}
    assert manifest.source.slice_metrics is not None
    assert manifest.source.export_version == built.export.version
    assert manifest.input.format == "records"
    raw_manifest = json.loads((folder / "manifest.json").read_text())
    assert raw_manifest["model"]["class"] == "sklearn.pipeline.Pipeline"
    assert raw_manifest["schema_version"] == 1 and raw_manifest["kind"] == "nbops.bundle"


def test_requirements_are_exact_pins(built: Built) -> None:
    lines = (built.folder / "requirements.lock").read_text().split()
    names = {line.split("==")[0].lower() for line in lines}
    assert all("==" in line for line in lines)
    assert {"numpy", "pandas", "scikit-learn", "scipy", "skops", "pydantic", "nbops"} <= names
    assert {"fastapi", "uvicorn"} <= names
    assert "sklearn" not in names  # the module name is mapped to its distribution


def test_dockerfile_and_model_card(built: Built) -> None:
    docker = (built.folder / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in docker
    assert "pip install --no-cache-dir -r /bundle/requirements.lock" in docker
    assert 'CMD ["nbops", "serve", "/bundle", "--host", "0.0.0.0", "--port", "8000"]' in docker
    card = (built.folder / "MODEL_CARD.md").read_text()
    assert "tiny.ipynb" in card and "`label`" in card
    assert "| accuracy | 0.9 |" in card
    assert 'c == "x"' in card and "0.92" in card
    assert "accuracy >= 0.8" in card
    assert "![accuracy_by_slice](card/accuracy_by_slice.png)" in card
    assert (built.folder / "card" / "accuracy_by_slice.png").read_bytes().startswith(b"\x89PNG")


def test_reference_stats_come_from_the_schema(built: Built) -> None:
    stats = json.loads((built.folder / "reference_stats.json").read_text())
    assert stats["kind"] == "nbops.reference_stats"
    assert set(stats["columns"]) >= {"a", "b", "c"}
    assert stats["columns"]["a"]["bin_edges"] == built.schema.column("a").reference.bin_edges


def test_reference_stats_from_a_reference_frame(built: Built, tmp_path: Path) -> None:
    half = built.requests.head(150)
    folder = built.build(tmp_path / "b", reference=half, plots=None)
    stats = json.loads((folder / "reference_stats.json").read_text())
    assert stats["from"] == "reference frame" and stats["rows"] == 150
    assert stats["columns"]["a"]["rows"] == 150
    assert sum(stats["columns"]["c"]["frequencies"].values()) == pytest.approx(1.0)


def test_load_and_predict_match_the_pipeline(built: Built) -> None:
    bundle = load_bundle(built.folder)
    expected = built.model.predict(built.package.transform.features(raw=built.raw))
    got = bundle.predict(built.requests)
    np.testing.assert_array_equal(got, expected)
    assert got.sum() > 0  # both classes occur: the comparison means something
    np.testing.assert_allclose(
        bundle.predict_proba(built.requests), built.model.predict_proba(built.features)
    )
    pd.testing.assert_frame_equal(bundle.transform(built.requests), built.features)
    assert bundle.request_columns == ["a", "b", "c"]
    records = bundle.predict_records(rows(built.requests.head(5)))
    assert records == expected[:5].tolist()
    assert all(type(v) is int for v in records)
    json.dumps(records)


def test_request_with_extra_columns_is_served(built: Built) -> None:
    bundle = load_bundle(built.folder)
    got = bundle.predict(built.requests.assign(extra=1))
    np.testing.assert_array_equal(got, built.model.predict(built.features))


def test_bundled_code_leaves_no_trace(built: Built) -> None:
    import sys

    before = list(sys.path)
    meta = list(sys.meta_path)
    load_bundle(built.folder)
    assert sys.path == before and sys.meta_path == meta
    assert not list(built.folder.rglob("__pycache__"))  # never compiled to the bundle


def test_next_build_is_the_next_version(built: Built, tmp_path: Path) -> None:
    out = tmp_path / "bundles"
    first = built.build(out, plots=None)
    second = built.build(out, plots=None)
    assert (first.name, second.name) == ("tiny-v1", "tiny-v2")
    assert BundleManifest.from_json((second / "manifest.json").read_text()).version == 2
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "tiny-v1",
        "tiny-v1.tar.gz",
        "tiny-v2",
        "tiny-v2.tar.gz",
    ]


def test_model_alone_serving(built: Built, tmp_path: Path) -> None:
    """Without a serving step, requests go straight to the model."""
    from nbops.quality.schema import infer_schema

    frame = built.features.assign(label=built.raw["label"])
    features_schema = infer_schema(frame, label="label")
    folder = built.build(
        tmp_path / "b", serving=None, schema=features_schema, export_folder=None, plots=None
    )
    bundle = load_bundle(folder)
    assert bundle.manifest.serving.step is None
    assert bundle.request_columns == ["a", "ratio", "c"]
    np.testing.assert_array_equal(
        bundle.predict(built.features), built.model.predict(built.features)
    )
    assert not (folder / "code").exists()


def test_failed_build_leaves_nothing(built: Built, tmp_path: Path) -> None:
    out = tmp_path / "b"
    with pytest.raises(BundleError, match="no-such-package-xyz"):
        built.build(out, requirements=["no-such-package-xyz"])
    assert not out.exists() or not [p for p in out.iterdir() if not p.name.startswith(".")]


def test_build_refuses_types_outside_the_allow_list(built: Built, tmp_path: Path) -> None:
    model = Pipeline([("f", FunctionTransformer(func=eval)), ("s", StandardScaler())])
    with pytest.raises(BundleError, match=r"builtins\.eval"):
        built.build(tmp_path / "b", model=model)


def test_build_refuses_a_serving_spec_the_export_lacks(built: Built, tmp_path: Path) -> None:
    spec = ServingSpec(
        step="transform:nope",
        module="transform",
        function="nope",
        input="raw",
        request_columns=["a", "b", "c"],
    )
    with pytest.raises(BundleError, match="transform:nope"):
        built.build(tmp_path / "b", serving=spec)
    spec = ServingSpec.from_export(built.export.manifest, request_columns=["a", "zz"])
    with pytest.raises(BundleError, match="zz"):
        built.build(tmp_path / "b", serving=spec)
    spec = ServingSpec.from_export(built.export.manifest, request_columns=["a", "b", "label"])
    with pytest.raises(BundleError, match="label"):
        built.build(tmp_path / "b", serving=spec)


# -- archives ------------------------------------------------------------------------------------


def test_tar_round_trip(built: Built, tmp_path: Path) -> None:
    archive = built.out / "tiny-v1.tar.gz"
    bundle = load_bundle(archive)
    unpacked = bundle.path
    assert unpacked.is_dir() and unpacked != built.folder
    np.testing.assert_array_equal(
        bundle.predict(built.requests), built.model.predict(built.features)
    )
    bundle.close()
    assert not unpacked.exists()
    again = unpack(archive, tmp_path / "x")
    assert again == tmp_path / "x" / "tiny-v1"
    assert load_bundle(again).manifest.files == bundle.manifest.files


def test_pack_is_deterministic(bundle_copy: Path) -> None:
    first = pack(bundle_copy).read_bytes()
    os.utime(bundle_copy / "schema.json", (1, 1))
    assert pack(bundle_copy).read_bytes() == first


def test_pack_leaves_only_the_archive_beside_the_folder(bundle_copy: Path) -> None:
    """Packing again replaces the archive whole; no temporary file stays beside it."""
    first = pack(bundle_copy)
    (bundle_copy / "MODEL_CARD.md").write_text("changed\n")
    second = pack(bundle_copy)
    assert second == first
    assert sorted(p.name for p in bundle_copy.parent.iterdir()) == sorted(
        [bundle_copy.name, first.name]
    )
    assert unpack(second, bundle_copy.parent / "x").joinpath("MODEL_CARD.md").read_text() == (
        "changed\n"
    )


def _tar_with(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _link(name: str, target: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def _device(name: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.CHRTYPE
    info.devmajor, info.devminor = 1, 3
    return info, None


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        pytest.param(lambda: _file("b/../../x"), "leaves the folder", id="dotdot"),
        pytest.param(lambda: _file("../x"), "leaves the folder", id="dotdot-top"),
        pytest.param(lambda: _file("/abs"), "absolute path", id="absolute"),
        pytest.param(
            lambda: _link("b/link", "/etc/passwd", tarfile.SYMTYPE), "is a link", id="symlink"
        ),
        pytest.param(
            lambda: _link("b/hard", "/etc/passwd", tarfile.LNKTYPE), "is a link", id="hardlink"
        ),
        pytest.param(lambda: _device("b/null"), "device", id="device"),
        pytest.param(lambda: _file("other/x"), "more than one folder", id="two-folders"),
        pytest.param(lambda: _file("b/a"), "appears twice", id="duplicate"),
    ],
)
def test_unsafe_archives_are_refused_before_extracting(tmp_path: Path, bad: Any, why: str) -> None:
    archive = _tar_with(tmp_path / "evil.tar.gz", [_file("b/a"), _file("b/manifest.json"), bad()])
    dest = tmp_path / "dest" / "inner"
    dest.mkdir(parents=True)
    with pytest.raises(BundleIntegrityError, match=f"unsafe archive: .*{why}"):
        unpack(archive, dest)
    assert list(dest.iterdir()) == []
    assert not (tmp_path / "x").exists() and not (tmp_path / "dest" / "x").exists()
    assert not Path("/abs").exists()
    with pytest.raises(BundleIntegrityError, match=why):
        load_bundle(archive)


def test_archive_size_limit(tmp_path: Path) -> None:
    archive = _tar_with(tmp_path / "big.tar.gz", [_file("b/a", b"0" * 5000)])
    with pytest.raises(BundleIntegrityError, match="more than 1000 bytes"):
        unpack(archive, tmp_path / "d", max_bytes=1000)
    assert not (tmp_path / "d").exists() or not list((tmp_path / "d").iterdir())


def test_not_an_archive(tmp_path: Path) -> None:
    fake = tmp_path / "fake.tar.gz"
    fake.write_bytes(b"not gzip")
    with pytest.raises(BundleIntegrityError):
        load_bundle(fake)


# -- integrity -----------------------------------------------------------------------------------


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "rel", ["model.skops", "code/tiny/transform.py", "schema.json", "MODEL_CARD.md"]
)
def test_a_changed_byte_is_refused(bundle_copy: Path, rel: str) -> None:
    _flip_a_byte(bundle_copy / rel)
    with pytest.raises(BundleIntegrityError, match=rel.replace(".", r"\.")):
        load_bundle(bundle_copy)


def test_an_extra_file_is_refused(bundle_copy: Path) -> None:
    (bundle_copy / "code" / "tiny" / "evil.py").write_text("import os\n")
    with pytest.raises(BundleIntegrityError, match=r"code/tiny/evil\.py is not listed"):
        load_bundle(bundle_copy)


def test_a_missing_file_is_refused(bundle_copy: Path) -> None:
    (bundle_copy / "reference_stats.json").unlink()
    with pytest.raises(BundleIntegrityError, match=r"reference_stats\.json is missing"):
        load_bundle(bundle_copy)


def test_pycache_is_ignored_and_never_read(bundle_copy: Path, built: Built) -> None:
    cache = bundle_copy / "code" / "tiny" / "__pycache__"
    cache.mkdir()
    (cache / "transform.cpython-311.pyc").write_bytes(b"garbage that would not import")
    bundle = load_bundle(bundle_copy)
    np.testing.assert_array_equal(
        bundle.predict(built.requests), built.model.predict(built.features)
    )


def _rewrite_manifest(folder: Path, change: Any) -> None:
    data = json.loads((folder / "manifest.json").read_text())
    change(data)
    (folder / "manifest.json").write_text(json.dumps(data))


def _rehash(folder: Path, data: dict[str, Any]) -> None:
    """Recompute the sha256 of every file, as an attacker who edits the manifest would."""
    for rel in data["files"]:
        data["files"][rel] = hashlib.sha256((folder / rel).read_bytes()).hexdigest()
    data["model"]["sha256"] = data["files"]["model.skops"]


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.mkdir, (str(self.marker),)


@pytest.mark.parametrize("rehash", [False, True], ids=["as-is", "manifest-rehashed"])
def test_a_pickle_model_is_refused_and_never_run(
    bundle_copy: Path, tmp_path: Path, rehash: bool
) -> None:
    marker = tmp_path / "PWNED"
    (bundle_copy / "model.skops").write_bytes(pickle.dumps(_Payload(marker)))
    if rehash:
        _rewrite_manifest(bundle_copy, lambda d: _rehash(bundle_copy, d))
    with pytest.raises(BundleIntegrityError, match=r"model\.skops"):
        load_bundle(bundle_copy)
    assert not marker.exists()


@pytest.mark.parametrize("bad_type", ["builtins.eval", "posix.system", "os.system"])
def test_a_manifest_cannot_widen_the_allow_list(bundle_copy: Path, bad_type: str) -> None:
    def add(data: dict[str, Any]) -> None:
        data["model"]["types"].append(bad_type)
        _rehash(bundle_copy, data)

    _rewrite_manifest(bundle_copy, add)
    with pytest.raises(BundleIntegrityError, match=bad_type.replace(".", r"\.")):
        load_bundle(bundle_copy)


def test_a_model_holding_eval_is_refused_even_when_the_manifest_lists_it(
    bundle_copy: Path,
) -> None:
    evil = Pipeline([("f", FunctionTransformer(func=builtins.eval)), ("s", StandardScaler())])
    data = sio.dumps(evil)
    (bundle_copy / "model.skops").write_bytes(data)

    def swap(manifest: dict[str, Any]) -> None:
        manifest["model"]["types"] = sorted(sio.get_untrusted_types(data=data))
        _rehash(bundle_copy, manifest)

    _rewrite_manifest(bundle_copy, swap)
    with pytest.raises(BundleIntegrityError, match=r"builtins\.eval"):
        load_bundle(bundle_copy)


def test_a_type_the_manifest_does_not_list_is_refused(bundle_copy: Path) -> None:
    forest = RandomForestClassifier(n_estimators=2, random_state=0).fit([[0], [1]], [0, 1])
    (bundle_copy / "model.skops").write_bytes(sio.dumps(forest))
    _rewrite_manifest(bundle_copy, lambda d: _rehash(bundle_copy, d))
    with pytest.raises(BundleIntegrityError, match=r"sklearn\.tree\._tree\.Tree"):
        load_bundle(bundle_copy)


def test_a_newer_manifest_is_refused(bundle_copy: Path) -> None:
    _rewrite_manifest(bundle_copy, lambda d: d.update(schema_version=2))
    with pytest.raises(BundleVersionError, match="upgrade nbops"):
        load_bundle(bundle_copy)


def test_a_damaged_manifest_is_refused(bundle_copy: Path) -> None:
    (bundle_copy / "manifest.json").write_text("{not json")
    with pytest.raises(BundleIntegrityError, match="manifest"):
        load_bundle(bundle_copy)


def test_a_manifest_path_outside_the_bundle_is_refused(bundle_copy: Path) -> None:
    _rewrite_manifest(bundle_copy, lambda d: d["files"].update({"../outside": "0" * 64}))
    with pytest.raises(BundleIntegrityError, match="unsafe path"):
        load_bundle(bundle_copy)


# -- requests ------------------------------------------------------------------------------------


def test_a_request_missing_a_column_is_refused(built: Built) -> None:
    bundle = load_bundle(built.folder)
    with pytest.raises(BundleError, match="'c'"):
        bundle.predict(built.requests.drop(columns=["c"]))
    with pytest.raises(BundleError, match="'b'"):
        bundle.predict_records([{"a": 0.1, "c": "x"}])


def test_a_request_with_a_wrong_type_is_refused(built: Built) -> None:
    bundle = load_bundle(built.folder)
    bad = built.requests.head(3).assign(b=["one", "two", "three"])
    with pytest.raises(BundleError, match="'b'"):
        bundle.predict(bad)
    with pytest.raises(BundleError, match="'a'"):
        bundle.predict_records([{"a": "high", "b": 1.5, "c": "x"}])


def test_extra_columns_such_as_the_label_are_left_out_of_a_request(built: Built) -> None:
    bundle = load_bundle(built.folder)
    with_label = bundle.predict(built.raw)
    without = bundle.predict(built.raw[bundle.request_columns])
    assert list(with_label) == list(without)


def test_values_outside_the_training_range_are_still_served(built: Built) -> None:
    bundle = load_bundle(built.folder)
    numeric = next(c.name for c in bundle.schema.columns if c.kind in ("integer", "float"))
    request = built.raw[bundle.request_columns].head(5).copy()
    request[numeric] = request[numeric] * 1000
    assert len(bundle.predict(request)) == 5


def test_load_time(built: Built) -> None:
    load_bundle(built.folder)  # warm: the modules skops and sklearn import once per process
    started = time.perf_counter()
    load_bundle(built.folder)
    elapsed = time.perf_counter() - started
    print(f"\nload_bundle: {elapsed:.3f} s")
    assert elapsed < 5.0


# -- the allow-list ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "allowed"),
    [
        ("sklearn.linear_model._logistic.LogisticRegression", True),
        ("sklearn.compose._column_transformer.ColumnTransformer", True),
        ("sklearn.tree._tree.Tree", True),
        ("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor", True),
        ("sklearn.utils.validation.check_array", True),
        ("numpy.dtype", True),
        ("numpy.float64", True),
        ("numpy.dtypes.Float64DType", True),
        ("functools.partial", True),
        ("builtins.eval", False),
        ("builtins.exec", False),
        ("os.system", False),
        ("posix.system", False),
        ("subprocess.Popen", False),
        ("numpy.load", False),
        ("sklearn.datasets._svmlight_format_io.dump_svmlight_file", False),
        ("sklearn.utils.validation.column_or_1d", False),  # a function not vetted by name
        ("sklearn.utils.Bunch", False),  # not its own name: a re-export
        ("sklearn.no_such_module.Thing", False),
        ("joblib.load", False),
        ("pickle.loads", False),
        ("not a name", False),
    ],
)
def test_allow_list(name: str, allowed: bool) -> None:
    assert is_allowed(name) is allowed


def test_trusted_types_only_narrows() -> None:
    assert trusted_types(["numpy.dtype"], ["numpy.dtype", "sklearn.tree._tree.Tree"]) == [
        "numpy.dtype"
    ]
    with pytest.raises(BundleIntegrityError, match=r"builtins\.eval"):
        trusted_types(["numpy.dtype"], ["numpy.dtype", "builtins.eval"])
    with pytest.raises(BundleIntegrityError, match=r"sklearn\.tree\._tree\.Tree"):
        trusted_types(["sklearn.tree._tree.Tree"], ["numpy.dtype"])
    with pytest.raises(BundleIntegrityError, match=r"builtins\.eval"):
        trusted_types(["builtins.eval"], ["builtins.eval"])


def test_realistic_models_need_only_allowed_types() -> None:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=60), "c": rng.choice(["x", "y"], size=60)})
    y = rng.integers(0, 2, size=60)
    for model in [
        HistGradientBoostingClassifier(max_iter=3, categorical_features=["c"]).fit(
            X.astype({"c": "category"}), y
        ),
        RandomForestClassifier(n_estimators=3, random_state=0).fit(X[["a"]], y),
    ]:
        untrusted = sio.get_untrusted_types(data=sio.dumps(model))
        assert trusted_types(untrusted, untrusted) == sorted(untrusted)


def test_tree_bounds() -> None:
    from sklearn.tree._tree import Tree

    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3))
    y = (X[:, 0] > 0).astype(int)
    tree = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y)
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)
    boosted = HistGradientBoostingClassifier(max_iter=3).fit(X, y)
    for model in (tree, forest, boosted):
        check_tree_bounds(model)
    state = tree.tree_.__getstate__()
    state["nodes"] = state["nodes"].copy()
    state["nodes"]["left_child"][0] = 10_000
    crafted = Tree(3, np.array([2], dtype=np.intp), 1)
    crafted.__setstate__(state)
    tree.tree_ = crafted
    with pytest.raises(BundleIntegrityError, match="left child"):
        check_tree_bounds(Pipeline([("m", tree)]))
    predictor = boosted._predictors[0][0]
    nodes = predictor.nodes.copy()
    inner = np.flatnonzero(nodes["is_leaf"] == 0)[0]
    nodes["feature_idx"][inner] = 7
    predictor.nodes = nodes
    with pytest.raises(BundleIntegrityError, match="feature index"):
        check_tree_bounds(boosted)


def test_pack_refuses_symlinks(bundle_copy: Path) -> None:
    (bundle_copy / "link").symlink_to("/etc/passwd")
    with pytest.raises(BundleError, match="link"):
        pack(bundle_copy)


def test_a_symlinked_file_is_refused_at_load(bundle_copy: Path) -> None:
    target = bundle_copy / "MODEL_CARD.md"
    real = bundle_copy.parent / "card.md"
    shutil.move(target, real)
    target.symlink_to(real)
    with pytest.raises(BundleIntegrityError, match=r"MODEL_CARD\.md is a link"):
        load_bundle(bundle_copy)
