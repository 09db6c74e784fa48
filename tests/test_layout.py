"""The test tree's own rules. pytest imports test modules by basename (rootdir-relative, no packages), so two
test files with one basename in different folders make collection fail on a clean checkout."""

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).parent


def test_test_module_basenames_are_unique_across_folders():
    names = Counter(p.name for p in TESTS.rglob("*.py") if p.name != "conftest.py" and p.name != "__init__.py")
    assert [name for name, count in names.items() if count > 1] == []
