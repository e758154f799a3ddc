"""The pytest plugin itself, through pytester: options, env fallbacks, inventory errors."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]
GOOD = (REPO / "inventories/embedded.yml").read_text()


def test_options_are_one_group_with_one_prefix(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    out = result.stdout.str()
    assert "xenlab: live-migration lab certification" in out
    for option in ("--lab-inventory", "--lab-keep", "--lab-qemu", "--lab-root", "--lab-cache"):
        assert option in out
    assert "env XENLAB_INVENTORY" in out


def test_bad_inventory_is_one_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yml", lab=GOOD.replace("relocation_port: 8002", "relocation_port: http"))
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess("--lab-inventory", "lab.yml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "bad lab inventory (--lab-inventory or XENLAB_INVENTORY): lab.yml: " \
           "all.vars.xenlab.relocation_port: expected an integer " \
           "from 1 to 65535, found 'http'" in err
    assert "Traceback" not in err + result.stdout.str()
    result.stdout.no_fnmatch_line("*collected*")  # nothing ran


def test_inventory_from_the_environment(pytester: pytest.Pytester,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makefile(".yml", lab=GOOD.replace("lab: embedded", "lab: fromenv"))
    pytester.makepyfile("""
        from xenlab.plugin import get_inventory, get_options

        def test_stash(pytestconfig):
            assert get_inventory(pytestconfig).lab == "fromenv"
            assert get_options(pytestconfig).keep is True
    """)
    monkeypatch.setenv("XENLAB_INVENTORY", "lab.yml")
    monkeypatch.setenv("XENLAB_KEEP", "1")
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)


def test_missing_inventory_file(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--lab-inventory", "nowhere.yml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "nowhere.yml: expected an existing inventory file (no such file)" in result.stderr.str()


def test_no_inventory_skips_lab_tests_with_the_reason(pytester: pytest.Pytester,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.delenv("XENLAB_INVENTORY", raising=False)
    pytester.makeconftest('pytest_plugins = ["fixtures.lab"]')
    pytester.makepyfile("def test_needs_lab(lab):\n    pass\n")
    result = pytester.runpytest_subprocess("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*no lab inventory: pass --lab-inventory FILE*"])


def test_unreachable_real_lab_fails_with_one_clear_line(pytester: pytest.Pytester,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """SSH that cannot reach the host (a ProxyCommand that fails: no packet leaves this
    machine): one sentence naming the host, no traceback."""
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    config = pytester.path / "ssh_config"
    config.write_text("Host *\n  ProxyCommand false\n")
    text = (REPO / "inventories/libvirt.yml").read_text().replace(
        "xen_storage: {ansible_host: 192.0.2.10}",
        f"xen_storage: {{ansible_host: 192.0.2.10, xenlab_ssh_config: {config}}}")
    assert str(config) in text
    pytester.makefile(".yml", lab=text)
    pytester.makeconftest('pytest_plugins = ["fixtures.lab"]')
    pytester.makepyfile("def test_needs_lab(lab):\n    pass\n")
    result = pytester.runpytest_subprocess("--lab-inventory", "lab.yml")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*lab libvirt could not be brought up: xen_storage "
                                 "(192.0.2.10) is not reachable over SSH*"])
    assert "Traceback" not in result.stdout.str() and "RuntimeError" not in result.stdout.str()
    assert not Path("/run/xenlab/libvirt").exists()  # its SSH socket directory went with it


def test_lab_plan_prints_every_command_and_runs_nothing(pytester: pytest.Pytester,
                                                        tmp_path: Path) -> None:
    xl = (REPO / "inventories/xl.yml").read_text()
    pytester.makefile(".yml", lab=xl)
    pytester.makepyfile("def test_must_not_run():\n    raise AssertionError('ran')\n")
    result = pytester.runpytest_subprocess("--lab-inventory", "lab.yml", "--lab-plan",
                                           "--lab-root", str(tmp_path / "labs"))
    assert result.ret == 0
    out = result.stdout.str()
    assert "provisioning plan for lab xl" in out and "nothing is run" in out
    assert out.index("== xen_resource_1") < out.index("== xen_resource_2")
    for command in ("modprobe aoe", "pvcreate -q /dev/etherd/e0.0", "vgcreate -q vg_xen",
                    "mkfs.ext4", "vgchange -q -a y vg_xen", "cat > /etc/xen/vm1.cfg"):
        assert command in out, command
    assert "test_must_not_run" not in out and "collected" not in out  # no session at all
    assert not (tmp_path / "labs").exists()


def test_lab_plan_with_a_bad_inventory_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yml", lab=GOOD.replace("lab: embedded", "lab: Bad Name"))
    result = pytester.runpytest_subprocess("--lab-inventory", "lab.yml", "--lab-plan")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "bad lab inventory" in result.stderr.str()
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
