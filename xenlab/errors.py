"""One small exception hierarchy; every error carries the context a user needs."""

from __future__ import annotations

from collections.abc import Sequence


class XenlabError(Exception):
    """Base of every error xenlab raises on purpose."""


class InventoryError(XenlabError):
    """An inventory file is malformed: names the file, the key and what was expected."""

    def __init__(self, path: str, key: str, expected: str, found: object = None) -> None:
        self.path = path
        self.key = key
        self.expected = expected
        self.found = found
        where = f"{path}: {key}" if key else path
        message = f"{where}: expected {expected}"
        if found is not None:
            message += f", found {found!r}"
        super().__init__(message)


class CommandError(XenlabError):
    """A command on a lab host failed: host, command, exit code, stdout and stderr."""

    def __init__(
        self, host: str, command: Sequence[str] | str, rc: int, stdout: str = "", stderr: str = ""
    ) -> None:
        self.host = host
        self.command = command if isinstance(command, str) else " ".join(command)
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        super().__init__(
            f"on {host}: `{self.command}` exited {rc}\n"
            f"  stdout: {_tail(stdout)}\n  stderr: {_tail(stderr)}"
        )


class LabError(XenlabError):
    """The lab could not be built, reached or torn down."""


class LabBusyError(LabError):
    """Another live run owns the lab of this name."""


class LabKeptError(LabError):
    """A lab of this name was kept on purpose (--lab-keep) and is not rebuilt or reaped."""


class BadNameError(XenlabError):
    """A lab name (from an inventory, an option, a variable or the CLI) breaks the rule."""


class UserInputError(XenlabError):
    """A value a user typed or a file a user named is not what was expected: names the
    input and what was expected."""


class MigrationError(XenlabError):
    """A migration could not be started or did not complete."""


class ParseError(XenlabError):
    """Text from a command did not have the expected shape."""

    def __init__(self, what: str, detail: str, text: str = "") -> None:
        self.what = what
        self.detail = detail
        self.text = text
        super().__init__(f"cannot parse {what}: {detail}" + (f" in {_tail(text)!r}" if text else ""))


def _tail(text: str, limit: int = 400) -> str:
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]


class ReportError(XenlabError):
    """A report could not be written (e.g. Chromium missing for the certificate)."""
