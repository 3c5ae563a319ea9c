"""Ray Serve deployments: model replicas (ASR, highlight scoring, captions) and the API ingress.

Build the application with `serve_apps.deployments.app:build_app` (what `configs/serve.yaml`
names); `clipforge serve` runs that file on a local Ray.
"""
