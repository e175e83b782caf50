"""Adapters for the domain ports: database, encryption, job queue."""
