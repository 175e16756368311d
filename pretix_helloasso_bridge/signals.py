"""Signal receivers of pretix_helloasso_bridge; they delegate to the modules that do the work."""
