"""fork.start_child's child forks a grandchild that never ends, and leaves it."""

MODULE = "fork"
OLD = "        code = 1\n        try:"
NEW = (
    "        if os.fork() == 0:\n"
    "            os.read(os.pipe()[0], 1)  # blocks forever\n"
    "        code = 1\n"
    "        try:"
)
