"""Process pools for episodes: spawned workers (each its own interpreter and simulator) that end
with the process that started them.

A pool's workers otherwise outlive a parent killed without shutting its pool down (SIGTERM's
default action, SIGKILL, a crash): they wait for work for ever, each holding its simulator's
memory (measured 2026-12-04: `otpr-evaluate --processes 2` sent SIGTERM left both workers
running under init).
"""

import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor


def spawn_pool(processes: int, initializer, initargs=()) -> ProcessPoolExecutor:
    """``processes`` spawned workers, each run ``initializer(*initargs)`` first (a module-level
    function: it is pickled)."""
    return ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start_worker, initargs=(initializer, tuple(initargs)))


def _start_worker(initializer, initargs):
    threading.Thread(target=_exit_with, args=(multiprocessing.parent_process(),), daemon=True,
                     name="exit-with-parent").start()
    initializer(*initargs)


def _exit_with(parent):
    """Block until the parent has exited, however it exited (its end of the spawn pipe closes
    then), and end this worker at once, mid-episode or not."""
    parent.join()
    os._exit(1)
