"""The pgAdmin tier: the real pgAdmin 4 (its own HTTP endpoints, and its page in headless
Chromium) against ``notifyagent serve`` and against the real C++ pgAgent."""
