"""Property suites for the families of issue 23 (untrusted input), over generated input rather than
the bad-input table's chosen rows:

- containment: any relative path of names, ``.``, ``..`` and links (inside or outside the root)
  is accepted by :func:`autoal.containment.inside` exactly when the path the operating system
  resolves lies inside the root, and refused with a StateError otherwise — never another error;
  :func:`check_tree` refuses a tree exactly when one of its links leads outside;
- YAML files: any bytes as a YAML file give either the plain-YAML value or one ConfigError
  naming the file (never a traceback, never an object a tag would construct);
- class checks: any pair of label vectors is accepted exactly when the pool holds two classes or
  more and every id 0..K-1 has an image in one split; refusals are DataErrors naming the ids;
- bounds: any number at any bounded run-config field is accepted exactly when it lies inside the
  field's interval.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoal.errors import ConfigError, DataError, StateError

PROPERTY = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)

# ------------------------------------------------------------------------------- containment

_PARTS = st.lists(st.sampled_from(["a", "b", "in_link", "out_link", "..", ".", "new"]), min_size=1, max_size=6)


def _world(base: Path) -> Path:
    """``base/root`` with folders a/b, a link inside (in_link -> a) and one outside (out_link ->
    base/outside); returns the root."""
    root = base / "root"
    if not root.exists():
        (root / "a" / "b").mkdir(parents=True)
        (base / "outside" / "a" / "b").mkdir(parents=True)
        (root / "in_link").symlink_to(root / "a")
        (root / "a" / "out_link").symlink_to(base / "outside")
        (root / "out_link").symlink_to(base / "outside")
    return root


@PROPERTY
@given(parts=_PARTS)
def test_inside_agrees_with_the_resolved_path(tmp_path_factory, parts):
    from autoal.containment import inside

    base = tmp_path_factory.mktemp("c")
    root = _world(base)
    rel = Path(*parts)
    truth = Path(os.path.realpath(root / rel))
    real_root = Path(os.path.realpath(root))
    expected_inside = truth == real_root or truth.is_relative_to(real_root)
    if expected_inside:
        assert inside(root, rel) == truth
    else:
        with pytest.raises(StateError, match="outside"):
            inside(root, rel)


@PROPERTY
@given(
    links=st.lists(
        st.tuples(st.sampled_from(["x", "a/y", "a/b/z"]), st.sampled_from(["in", "out", "up", "self"])),
        max_size=3,
        unique_by=lambda t: t[0],
    )
)
def test_check_tree_refuses_exactly_the_trees_with_a_link_leading_outside(tmp_path_factory, links):
    from autoal.containment import check_tree

    base = tmp_path_factory.mktemp("t")
    root = base / "root"
    (root / "a" / "b").mkdir(parents=True)
    (base / "elsewhere").mkdir()
    target = {
        "in": lambda: root / "a" / "b",
        "out": lambda: base / "elsewhere",
        "up": lambda: Path(".."),
        "self": lambda: Path("."),
    }
    outside = False
    for name, kind in links:
        link = root / name
        link.symlink_to(target[kind]())
        real = Path(os.path.realpath(link))
        outside |= not (real == root.resolve() or real.is_relative_to(root.resolve()))
    if outside:
        with pytest.raises(StateError, match="outside"):
            check_tree(root)
    else:
        check_tree(root)


# ------------------------------------------------------------------------------- YAML files

_YAML_TEXT = st.one_of(
    st.binary(max_size=200),
    st.lists(
        st.sampled_from(
            list("ab:-[]{}!&*|>'\"#\n\t ,?%@`\u00e9")
            + ["!!python/object:os.system ", "!!python/name:os.system ", "x: ", "- "]
        ),
        max_size=30,
    ).map(lambda parts: "".join(parts).encode("utf-8")),
)


@PROPERTY
@given(data=_YAML_TEXT)
def test_any_bytes_as_a_yaml_file_give_plain_values_or_one_line_naming_the_file(tmp_path_factory, data):
    import yaml

    from autoal.platform.yaml_file import read_yaml

    path = tmp_path_factory.mktemp("y") / "f.yaml"
    path.write_bytes(data)
    try:
        value = read_yaml(path)
    except ConfigError as e:
        msg = str(e)
        assert str(path) in msg and "\n" not in msg, msg
        return
    # accepted: exactly what PyYAML's safe loader (no tags that construct objects) gives
    assert value == yaml.safe_load(data.decode("utf-8")) or value != value  # NaN compares unequal to itself

    def plain(v) -> bool:
        if isinstance(v, dict):
            return all(plain(k) and plain(x) for k, x in v.items())
        if isinstance(v, (list, tuple, set)):
            return all(plain(x) for x in v)
        return v is None or isinstance(v, (str, int, float, bool, bytes)) or type(v).__module__ == "datetime"

    assert plain(value), value


# ------------------------------------------------------------------------------- class checks

_LABELS = st.lists(st.integers(0, 7), max_size=30)


@PROPERTY
@given(pool=_LABELS.filter(len), test=_LABELS)
def test_label_vectors_are_accepted_exactly_when_classes_are_dense_and_the_pool_has_two(pool, test):
    from autoal.data.checks import check_no_empty_classes, check_pool_classes

    k = max(pool + test) + 1
    yp, yt = torch.tensor(pool), torch.tensor(test, dtype=torch.int64)
    dense = set(pool) | set(test) == set(range(k))
    two = len(set(pool)) >= 2
    try:
        check_no_empty_classes(yp, yt, k, "labels")
        check_pool_classes(yp, k, "labels")
    except DataError as e:
        assert not (dense and two), str(e)
        msg = str(e)
        assert msg.startswith("labels: ") and "\n" not in msg
        if not dense:
            missing = sorted(set(range(k)) - set(pool) - set(test))
            assert f"class id(s) {missing[0]}" in msg, msg
        return
    assert dense and two


@PROPERTY
@given(pool=_LABELS.filter(lambda p: len(set(p)) >= 2), test=_LABELS.filter(len))
def test_coverage_warnings_name_exactly_the_classes_missing_from_one_split(pool, test):
    from autoal.data.checks import coverage_warnings

    k = max(pool + test) + 1
    names = [str(c) for c in range(k)]
    msgs = coverage_warnings(torch.tensor(pool), torch.tensor(test), k, names)
    only_test, only_pool = set(test) - set(pool), set(pool) - set(test)
    assert len(msgs) == bool(only_test) + bool(only_pool)
    text = " ".join(msgs)
    for c in sorted(only_test | only_pool)[:10]:
        assert f"id {c}" in text
    if only_test:
        ceiling = 1 - sum(t in only_test for t in test) / len(test)
        assert f"cannot exceed {ceiling:.3f}" in msgs[0]


# ------------------------------------------------------------------------------- bounds


def _bounded_fields() -> list[tuple[str, object, object]]:
    """(key, Bound, default value) of every bounded field of the run config, nested sections
    included."""
    from autoal.bounds import bound_of
    from autoal.config import RunConfig

    out = []

    def walk(obj, prefix: str) -> None:
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                walk(value, f"{prefix}{f.name}.")
            elif bound_of(f) is not None:
                out.append((f"{prefix}{f.name}", bound_of(f), value))

    walk(RunConfig(), "")
    return out


def test_the_bound_table_covers_the_numbers_issue_23_named():
    keys = {k for k, _, _ in _bounded_fields()}
    assert {"train.lr", "train.weight_decay", "train.momentum", "al.rounds", "al.query_size"} <= keys, keys


@PROPERTY
@given(data=st.data())
def test_any_number_at_a_bounded_field_is_accepted_exactly_inside_its_interval(data):
    from autoal.config import RunConfig

    key, bound, default = data.draw(st.sampled_from(_bounded_fields()))
    is_int = isinstance(default, int) and not isinstance(default, bool)
    edges = [x for x in (bound.low, bound.high) if x is not None]
    near = st.sampled_from(edges) if edges else st.just(0)
    if is_int:
        value = data.draw(
            st.one_of(st.integers(-(10**6), 10**6), near.map(lambda e: int(e) + data.draw(st.integers(-1, 1))))
        )
    else:
        value = data.draw(
            st.one_of(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6), near.map(float))
        )
    inside_ = value in bound
    section, name = key.rsplit(".", 1)
    d: dict = {}
    node = d
    for part in section.split("."):
        node = node.setdefault(part, {})
    node[name] = value
    try:
        RunConfig.from_dict(d)
    except ConfigError as e:
        if inside_:  # another rule may refuse an in-bound value (e.g. a budget beyond the pool): it names a key
            assert "\n" not in str(e) and ":" in str(e), str(e)
        else:
            assert str(e).startswith(f"{key}:"), str(e)
        return
    assert inside_, (key, value, bound)
    assert math.isfinite(float(value))
