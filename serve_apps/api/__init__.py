"""The public REST API (FastAPI): one factory, run as the Serve ingress or under uvicorn."""
