"""The note's task_master.py without its main guard (DIST-10): a script, run by path.

``python kata/probes/distributed_unguarded.py MODULE METHOD`` starts the
master of ``MODULE`` (``solutions.distributed`` or a learner's) under start
method ``METHOD`` at the top level of the script. Under spawn the manager's
server process re-runs this file as ``__mp_main__`` to rebuild the main
module; there the top-level code tries to start a second server while the
first is still bootstrapping, and multiprocessing refuses with
``RuntimeError: An attempt has been made to start a new process before the
current process has finished its bootstrapping phase``. Under fork nothing
is re-run and the script works.
"""

import importlib
import multiprocessing
import sys

multiprocessing.set_start_method(sys.argv[2], force=True)  # force: the child runs this line again
module = importlib.import_module(sys.argv[1])
manager = module.start_master(module.make_key())
manager.shutdown()
print("master started and stopped", flush=True)
