"""The command line's commands, one module each (``notifyagent.cli`` parses the arguments and
calls them). A command prints its own output and returns the exit status; errors that end it
are :class:`~notifyagent.errors.NotifyAgentError`, which the CLI logs and turns into the exit
status."""
