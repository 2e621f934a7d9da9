"""fork.py does not import: a syntax error on the line of wait_child."""

MODULE = "fork"
OLD = "def wait_child(pid: int) -> int:"
NEW = "def wait_child(pid: int) -> int"
