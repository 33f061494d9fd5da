"""Errors that the command line turns into a one-line message and exit status 2."""


class ConfigError(ValueError):
    """An invalid option or configuration value; the message names it and the fix."""


def require(condition: bool, message: str) -> None:
    """Raise ConfigError with ``message`` unless ``condition`` holds (user input only)."""
    if not condition:
        raise ConfigError(message)
