"""process.kill_and_join never returns."""

MODULE = "process"
OLD = "    os.kill(p.pid, sig)\n    p.join()\n    return p.exitcode"
# sleep-ok: the hostile code hangs on purpose
NEW = "    import time\n\n    while True:\n        time.sleep(0.05)"
