"""Repository functions: all SQL of the domain tables, parameterised, keyword-only."""
