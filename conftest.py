"""Root conftest: registers xenlab's fixture plugins, one module per concern."""

pytest_plugins = [
    "fixtures.lab",
    "fixtures.hosts",
    "fixtures.storage",
    "fixtures.meter",
    "fixtures.migration",
    "fixtures.faults",
    "fixtures.maintenance",
    "fixtures.findings",
    "fixtures.reporting",
]
