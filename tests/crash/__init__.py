"""Crash-sweep harness: a child process that runs one graph run and can SIGKILL itself at a named point."""
