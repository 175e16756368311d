"""Test kit of the suite: fake external services on 127.0.0.1 and pytest fixtures that start them."""
