"""Scale-out: the app through PgBouncer, many instances behind HAProxy, many workers."""
