"""Print a new key for ``[integrations] encryption_keys``: ``python -m pretix_integrations_core.keygen``."""
from cryptography.fernet import Fernet

if __name__ == "__main__":
    print(Fernet.generate_key().decode())
