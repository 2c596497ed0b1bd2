"""One exception tree for the whole project.

Retriable versus fatal is a type, not a string: the retry policy and the CLI exit codes are
decided by ``isinstance`` checks against these classes.
"""

from __future__ import annotations


class KizunaError(Exception):
    """Root of every error Kizuna raises on purpose."""


class ConfigError(KizunaError):
    """Configuration, playbook or template input that Kizuna cannot use.

    Carries the file, line and field so the message points the admin at the exact spot.
    """

    def __init__(
        self, message: str, *, file: str | None = None, line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.field = field
        super().__init__(self.describe())

    def describe(self) -> str:
        where = self.file or "<config>"
        if self.line is not None:
            where = f"{where}:{self.line}"
        what = f"{self.field}: " if self.field else ""
        return f"{where}: {what}{self.message}"


class ConfigErrors(ConfigError):
    """Several configuration errors found in one pass, reported together."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        first = errors[0]
        super().__init__(first.message, file=first.file, line=first.line, field=first.field)

    def describe(self) -> str:
        return "\n".join(e.describe() for e in getattr(self, "errors", [])) or super().describe()


class StoreError(KizunaError):
    """The local store is unreachable or its schema is not what this version expects."""


class NotFoundError(KizunaError):
    """A lookup by a person (account name, play key) matched nothing."""


class ConnectorError(KizunaError):
    """A CRM could not be read or written."""

    def __init__(self, message: str, *, connector: str = "", detail: str | None = None) -> None:
        self.connector = connector
        self.detail = detail
        super().__init__(f"{connector}: {message}" if connector else message)


class RetriableAPIError(ConnectorError):
    """A failure worth retrying: rate limits, 5xx, dropped connections."""

    def __init__(
        self, message: str, *, connector: str = "", retry_after: float | None = None,
        detail: str | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, connector=connector, detail=detail)


class FatalAPIError(ConnectorError):
    """A failure that retrying will not fix: bad query, missing permission, bad request."""


class AuthError(FatalAPIError):
    """Credentials are missing, wrong or expired and cannot be renewed."""


class DeliveryError(KizunaError):
    """A nudge or task could not be delivered; the play stays pending for the next tick."""
