-- Removes every notifyagent object; the triggers on the pgagent tables go with their functions.
DROP SCHEMA IF EXISTS notifyagent CASCADE;
