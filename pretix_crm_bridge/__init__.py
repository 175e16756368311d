from pretix_integrations_core import __version__  # NOQA: F401
