"""Signal receivers of pretix_crm_bridge; they delegate to the modules that do the work."""
