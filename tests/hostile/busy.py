"""fork.wait_child busy-loops forever."""

MODULE = "fork"
OLD = "    _, status = os.waitpid(pid, 0)"
NEW = "    while True:\n        pass"
