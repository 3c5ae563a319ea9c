"""Stage functions and callable classes run by Ray Data (no database access in here)."""
