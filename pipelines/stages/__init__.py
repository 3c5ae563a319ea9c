"""The pipeline stages: each stage's driver side and its warm Ray actor class (actors never
access the database; the driver loads inputs and commits outputs)."""
