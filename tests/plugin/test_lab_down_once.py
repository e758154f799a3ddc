"""A lab that cannot be brought up is reported once, with one message; every other test that
needed it is skipped in one line, not failed with the same error again."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]


def test_a_lab_that_cannot_come_up_fails_once(pytester: pytest.Pytester,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # a real lab xenlab has no driver for: it fails before any connection is tried
    text = (REPO / "inventories/xl.yml").read_text().replace("toolstack: xl", "toolstack: qemu")
    pytester.makefile(".yml", lab=text)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    pytester.makeconftest('pytest_plugins = ["fixtures.lab"]')
    pytester.makepyfile(**{f"test_{n}": "def test_x(lab):\n    pass\n"
                           "def test_y(lab):\n    pass\n" for n in "ab"})
    sockets = Path("/run/xenlab/xl")  # the lab's SSH socket directory, were it made
    made_before = sockets.exists()
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--lab-inventory",
                                           "lab.yml", "-rs")
    assert made_before or not sockets.exists()  # a lab that never came up made nothing
    out = result.stdout.str()
    result.assert_outcomes(errors=1, skipped=3)
    assert out.count("could not be brought up") == 4, out  # the error, and 3 one-line skips
    assert out.count("has no driver for hosts reached over SSH") == 1, out  # its detail once
    assert "Traceback" not in out and "During handling" not in out
