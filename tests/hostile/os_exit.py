"""process.start_and_join calls os._exit in the test process."""

MODULE = "process"
OLD = "    p = Process(target=target, args=args)\n    p.start()"
NEW = "    os._exit(0)"
