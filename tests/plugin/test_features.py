"""Labs declare features; checks declare needs; options a lab cannot honour are refused in
one line naming the option and the lab (through pytester, with the real plugin)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]


@pytest.mark.parametrize(("inventory", "option", "needs"), [
    ("xl.yml", "--lab-memory-audit", "the guest's memory compared on both sides"),
    ("xl.yml", "--lab-fault-suite", "faults set off by the lab itself"),
    ("embedded-xen.yml", "--lab-memory-audit", "the guest's memory compared on both sides"),
    ("embedded-xen.yml", "--lab-qemu=/usr/bin/qemu-system-x86_64", "a QEMU of the lab's choosing"),
    ("embedded-xen.yml", "--lab-fault=fstab-type", "a lab built broken on purpose"),
    ("embedded.yml", "--lab-provision", "the article's set-up performed"),
    ("embedded-xen-libvirt.yml", "--lab-fault-suite", "faults set off by the lab itself"),
    ("xl.yml", "--lab-allow-power-off", "a resource host's power pulled and restored"),
    # a real lab whose hosts have no power commands (the embedded labs switch their own)
    ("libvirt.yml", "--lab-allow-power-off", "a resource host's power pulled"),
])
def test_an_option_the_lab_cannot_honour_is_one_usage_error(
        pytester: pytest.Pytester, inventory: str, option: str, needs: str) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--lab-inventory",
                                           str(REPO / "inventories" / inventory), option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert f"{option.split('=')[0]}" in err and "cannot honour it: it needs" in err, err
    assert needs in err, err
    assert "Traceback" not in err + result.stdout.str()


def test_a_needed_feature_skips_in_one_place_and_a_typo_is_refused(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    pytester.makeconftest('pytest_plugins = ["fixtures.lab"]\n'
                          'import pytest\n'
                          'class Lab:\n'
                          '    features = frozenset({"aoe-initiator"})\n'
                          '    class inventory:\n'
                          '        lab = "toy"\n'
                          '@pytest.fixture(scope="session")\n'
                          'def lab():\n'
                          '    return Lab()\n')
    pytester.makepyfile(test_needs="""
        import pytest

        @pytest.mark.needs("aoe-initiator")
        def test_has(lab):
            pass

        @pytest.mark.needs("aoe-initiator", "device-mapper")
        def test_lacks():
            raise AssertionError("never run")

        def test_plain():
            pass
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(passed=2, skipped=1)
    assert ("needs device-mapper on the resource hosts (LVs active as devices), which lab "
            "'toy' does not have") in result.stdout.str()
    pytester.makepyfile(test_needs="""
        import pytest

        @pytest.mark.needs("device-maper")
        def test_typo():
            pass
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "unknown lab feature 'device-maper'" in result.stderr.str()


@pytest.mark.parametrize("value", ["0", "65", "two", "", "1e3", "sequential;id"])
def test_a_bad_evacuation_policy_is_one_usage_error(pytester: pytest.Pytester,
                                                    value: str) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--lab-inventory",
                                           str(REPO / "inventories" / "embedded.yml"),
                                           f"--lab-evacuation={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "--lab-evacuation" in err and "expected sequential or a number" in err, err
    assert "Traceback" not in err + result.stdout.str()
