"""Models of the CRM bridge (Django imports this module; each part keeps its models in its own package)."""
from .calendly.models import CalendlyConnection, Meeting, Prospect  # NOQA: F401
