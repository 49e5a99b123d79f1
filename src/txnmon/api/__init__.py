"""The HTTP front door (`txnmon serve`), one slice: API keys, limits and the ingest contract (pure), the
FastAPI app and its production wiring (service rank). docs/api.md shows it with curl."""
