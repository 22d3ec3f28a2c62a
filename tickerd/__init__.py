"""tickerd: unique, increasing 64-bit ids over the Redis protocol."""

__version__ = "0.1.0"

# The Redis version reported by HELLO and INFO: clients gate features on it.
REDIS_COMPAT_VERSION = "7.2.0"

__all__ = ["REDIS_COMPAT_VERSION", "__version__"]
