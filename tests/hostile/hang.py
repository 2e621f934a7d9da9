"""process.kill_and_join never returns."""

MODULE = "process"
OLD = "    os.kill(p.pid, sig)\n    p.join()\n    return p.exitcode"
NEW = "    import time\n\n    while True:\n        time.sleep(0.05)"  # sleep-ok: hangs on purpose
