"""Host facts for the report and results.json: what changed between two runs of the same lab
(kernel, hypervisor, distribution, CPU) is what a regression hunt looks at first."""

from __future__ import annotations

FACTS_SCRIPT = (
    "echo kernel=$(uname -r); "
    "if [ -r /etc/os-release ]; then . /etc/os-release; echo distribution=$PRETTY_NAME; fi; "
    "echo cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2); "
    "echo cpus=$(grep -c ^processor /proc/cpuinfo)"
)


def parse_facts(text: str) -> dict[str, str]:
    facts = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and value.strip():
            facts[key.strip()] = " ".join(value.split())
    return facts


def changed_facts(old: dict[str, dict[str, str]], new: dict[str, dict[str, str]]
                  ) -> list[tuple[str, str, str, str]]:
    """(host, fact, old, new) for every fact that differs between two runs."""
    out = []
    for host in sorted(set(old) | set(new)):
        a, b = old.get(host, {}), new.get(host, {})
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                out.append((host, key, a.get(key, "-"), b.get(key, "-")))
    return out
