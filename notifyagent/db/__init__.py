"""PostgreSQL: connections, the schema checks and install, the SQL files, and ``PgStore``.

``connect`` and the connection helpers are re-exported here, as most callers need only them.
"""

from notifyagent.db.connect import AsyncConn, IdleCheck, connect, describe_connect_error

__all__ = ["AsyncConn", "IdleCheck", "connect", "describe_connect_error"]
