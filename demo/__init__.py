"""The local demo started by ``make run`` (see README): pretix with the three plugins and simulators of the external services."""
