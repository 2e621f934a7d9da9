"""fork.start_child lets the child return into the caller."""

MODULE = "fork"
OLD = (
    "        code = 1\n"
    "        try:\n"
    "            child(pid)\n"
    "            code = 0\n"
    "        finally:\n"
    "            os._exit(code)"
)
NEW = "        child(pid)"
