"""Root conftest: registers xenlab's fixture plugins, one module per concern."""

pytest_plugins = [
    "fixtures.lab",
    "fixtures.hosts",
    "fixtures.storage",
    "fixtures.migration",
    "fixtures.findings",
]
