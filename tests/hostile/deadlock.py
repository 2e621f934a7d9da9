"""process.life_of takes a plain Lock twice: a self-deadlock."""

MODULE = "process"
OLD = "    before = p.is_alive()"
NEW = (
    "    import threading\n"
    "\n"
    "    lock = threading.Lock()\n"
    "    lock.acquire()\n"
    "    lock.acquire()\n"
    "    before = p.is_alive()"
)
