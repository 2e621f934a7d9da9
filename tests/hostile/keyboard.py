"""process.kill_and_join raises KeyboardInterrupt."""

MODULE = "process"
OLD = "    os.kill(p.pid, sig)\n    p.join()\n    return p.exitcode"
NEW = "    p.kill()\n    p.join()\n    raise KeyboardInterrupt"
