"""The suite's own order under pytest-xdist: every process starts with its share of the long tests."""

import pytest

from tests.conftest import _long_first

pytestmark = pytest.mark.tooling


class Item:
    def __init__(self, name: str, long: bool):
        self.name, self.long = name, long

    def get_closest_marker(self, name):
        return self.long or None if name == "long" else None


def test_long_tests_start_every_workers_share():
    items = [Item(f"s{i}", False) for i in range(10)] + [Item(f"L{i}", True) for i in (1, 2, 3)]
    ordered = [item.name for item in _long_first(items, workers=2)]
    assert sorted(ordered) == sorted(item.name for item in items)  # every test once
    # worksteal sends the first process 13 // 2 = 6 tests, the second the other 7
    assert ordered[:6] == ["L1", "L3", "s0", "s1", "s2", "s3"]
    assert ordered[6:] == ["L2", *(f"s{i}" for i in range(4, 10))]
    assert [item.name for item in _long_first(items, workers=1)][:3] == ["L1", "L2", "L3"]
