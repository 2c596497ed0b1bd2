"""Bolt listeners by kind; each module has ``register(app, bot)``."""
