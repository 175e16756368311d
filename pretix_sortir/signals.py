"""Signal receivers of pretix_sortir; they delegate to the modules that do the work."""
