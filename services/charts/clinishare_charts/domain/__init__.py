"""Charts domain: schemas and the access rule, pure (no I/O)."""
