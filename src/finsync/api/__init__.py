"""HTTP edge: FastAPI app, routers, schemas and problem+json errors."""
