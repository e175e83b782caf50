"""Use cases: they talk to domain ports only, never to FastAPI, SQL or provider HTTP."""
