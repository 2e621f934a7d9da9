"""process.start_and_join runs a target that raises, instead of the given one."""

MODULE = "process"
OLD = "    p = Process(target=target, args=args)"
NEW = "    p = Process(target=_explode)"
APPEND = "\n\ndef _explode() -> None:\n    raise RuntimeError('the child blew up')\n"
