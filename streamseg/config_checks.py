"""Range checks shared by the config sections (kept apart from config.py to avoid import cycles)."""
from streamseg.errors import ConfigError


def require(condition: bool, message: str) -> None:
    """Raise ConfigError(message) unless condition holds; message names the field."""
    if not condition:
        raise ConfigError(message)
