"""Every registered variant says where it stands on its level's cost ladder, consistently."""

from __future__ import annotations

from collections import defaultdict

import pytest

import variants
from harness.run import cluster

SINGLE = [n for n in variants.REGISTRY if cluster.layout(variants.REGISTRY[n]) == "single"]
LEVELS = {"NumPy", "tf.compat.v1", "TF2 core", "Keras", "tf.keras 2 (legacy)"}


@pytest.fixture(scope="module")
def classes() -> dict[str, type]:
    return {name: variants.load(name) for name in SINGLE}


def test_every_variant_names_its_level(classes):
    for name, cls in classes.items():
        assert getattr(cls, "level", None) in LEVELS, name


def test_rungs_are_unique_and_start_at_the_tutorial_form(classes):
    rungs: dict[str, list[int]] = defaultdict(list)
    for cls in classes.values():
        if getattr(cls, "rung", None) is not None:
            assert isinstance(cls.rung, int) and cls.rung >= 0
            rungs[cls.level].append(cls.rung)
    for level, found in rungs.items():
        assert len(found) == len(set(found)), f"{level}: two variants on one rung"
        assert min(found) == 0, f"{level}: no rung 0 (the form tutorials teach)"
    assert len(rungs["TF2 core"]) >= 4 and len(rungs["Keras"]) >= 3
