-- Removes every notifyagent object; the triggers on the pgagent tables go with their functions.
-- The first statement's row says whether there was anything to remove (uninstall is
-- idempotent, and a second run says so).
SELECT to_regnamespace('notifyagent') IS NOT NULL AS present;
DROP SCHEMA IF EXISTS notifyagent CASCADE;
