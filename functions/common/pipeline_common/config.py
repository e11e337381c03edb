"""Reading the functions' environment with errors that name the variable."""
from __future__ import annotations

import os

from pipeline_common.errors import ConfigurationError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        if default is None:
            raise ConfigurationError(f"environment variable {name} is not set")
        return default
    return value.strip()


def env_int(name: str, default: int | None = None, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = env_str(name, None if default is None else str(default))
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"environment variable {name} must be an integer, got {raw!r}") from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ConfigurationError(f"environment variable {name}={value} is outside [{minimum}, {maximum}]")
    return value


def env_float(name: str, default: float | None = None, minimum: float | None = None, maximum: float | None = None) -> float:
    raw = env_str(name, None if default is None else repr(default))
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"environment variable {name} must be a number, got {raw!r}") from None
    if value != value or (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ConfigurationError(f"environment variable {name}={raw} is outside [{minimum}, {maximum}]")
    return value


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigurationError(f"environment variable {name} must be true or false, got {raw!r}")


def env_list(name: str) -> list[str]:
    """A comma-separated list; unset or empty means no items."""
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]
