"""Ray Serve applications: the public API (FastAPI, also runnable under plain uvicorn) and the
online model deployments."""
