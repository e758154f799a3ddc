"""A suite check that fails on purpose (used by tests/e2e): not collected by `pytest tests`."""


def test_fails_on_purpose(lab):  # type: ignore[no-untyped-def]
    assert lab.guest_location() == "nowhere", "deliberate failure"
