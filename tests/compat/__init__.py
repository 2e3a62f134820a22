"""Compatibility tests: the same scenario under the real pgAgent and under notifyagent, and a
replay of the SQL pgAdmin sends (tests/compat/pgadmin-sql) against a running notifyagent."""
