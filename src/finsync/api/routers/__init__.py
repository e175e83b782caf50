"""Routers: thin HTTP mapping onto use cases and repositories."""
