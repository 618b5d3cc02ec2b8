"""The suite's own layout: pytest imports each test module by its file name
(no packages under tests/), so two modules with one name in two folders
stop a whole run with "import file mismatch" (a clean-clone run did)."""
from collections import Counter

from support.cluster import REPO


def test_no_two_test_modules_share_a_name():
    names = Counter(path.name for path in (REPO / "tests").rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
