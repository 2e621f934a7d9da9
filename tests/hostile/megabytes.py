"""process.main prints five megabytes first."""

MODULE = "process"
OLD = '    print(f"Parent process {os.getpid()}.", flush=True)'
NEW = '    print("x" * 5_000_000, flush=True)\n    print(f"Parent process {os.getpid()}.", flush=True)'
