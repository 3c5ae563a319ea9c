"""Operations tooling: backup and restore of the database and the media bucket.

Imported only by the CLI (`clipforge backup ...`) and tests; nothing in the request or job path
depends on it.
"""
