"""process.start_and_join leaves a non-daemon thread waiting forever."""

MODULE = "process"
OLD = "    p = Process(target=target, args=args)\n    p.start()"
NEW = (
    "    import threading\n\n    threading.Thread(target=threading.Event().wait, name='stuck').start()\n"
    "    p = Process(target=target, args=args)\n    p.start()"
)
