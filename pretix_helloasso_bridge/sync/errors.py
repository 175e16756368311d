"""The two ways a sync step says no."""


class SyncAlreadyRunning(Exception):
    """Another sync of this event holds the claim (one sync per event at a time, across workers)."""


class SkipOrder(Exception):
    """This remote order cannot be imported; the message is the reason shown in the sync report."""
