"""fork.wait_child calls sys.exit in the test process."""

MODULE = "fork"
OLD = "    _, status = os.waitpid(pid, 0)"
NEW = "    import sys\n\n    sys.exit(0)"
