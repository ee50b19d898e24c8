"""agentprof's exception hierarchy.

::

    AgentprofError                  base of everything agentprof raises on purpose
    ├── ConfigError(ValueError)     bad configuration: arguments, env vars, pyproject, prices
    └── StoreError                  the store cannot be used as asked
        ├── StoreNotFoundError      no store (or no data) where one was expected
        ├── StoreCorruptError       the file is not a database, or not agentprof's
        ├── StoreSchemaError        the database was written by a newer agentprof
        └── StoreLockedError        another process kept the database file locked too long

The CLI turns each into one line naming what is wrong and what to do; none of them is
ever raised into a user's agent code (see ``agentprof._safety``).
"""

from __future__ import annotations


class AgentprofError(Exception):
    """Base class of every error agentprof raises deliberately."""


class ConfigError(AgentprofError, ValueError):
    """Configuration is invalid; the message names the setting and the fix."""


class StoreError(AgentprofError):
    """The store cannot be opened or used as asked."""


class StoreNotFoundError(StoreError):
    """There is no store, or no recorded data, at the configured location."""


class StoreCorruptError(StoreError):
    """The database file is unreadable, not a database, or not an agentprof store."""


class StoreSchemaError(StoreError):
    """The store was written by a newer agentprof than this one."""


class StoreLockedError(StoreError):
    """Another process held the database file's lock past the wait allowed (a later try may succeed)."""
