"""process.kill_and_join never returns, under spawn (semaphores are named, tracked, then unlinked)."""

MODULE = "process"
METHOD = "spawn"
OLD = "    os.kill(p.pid, sig)\n    p.join()\n    return p.exitcode"
NEW = "    import time\n\n    while True:\n        time.sleep(0.05)"  # sleep-ok: hangs on purpose
