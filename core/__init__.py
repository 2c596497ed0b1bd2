"""Kizuna's core: domain model, settings, store, errors and the tick that ties them together."""
