"""Run a command on one free GPU of a list: ``CUDA_VISIBLE_DEVICES=<id> command``.

    python gpu_slot.py --gpus 0,1,2,3 --lock-dir /tmp/locks -- kipoi-tanger predict ...

Snakemake caps how many GPU jobs run at once (``--resources gpu=4``) but does
not say which GPU a local job may use. Each job therefore takes an exclusive
``flock`` on ``<lock-dir>/gpu<id>.lock`` for the first free id, holds it while
the command runs (the lock dies with this process, even on ``kill -9``), and
waits for a GPU to free up if all are taken. The lock dir must be on a local
file system of the node.
"""
import argparse
import fcntl
import os
import subprocess
import sys
import time


def acquire(gpus, lock_dir, poll):
    """Block until one of ``gpus`` is free; return ``(gpu, open lock file)``."""
    os.makedirs(lock_dir, exist_ok=True)
    while True:
        for g in gpus:
            fh = open(os.path.join(lock_dir, f"gpu{g}.lock"), "a")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                continue
            return g, fh
        time.sleep(poll)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gpus", required=True, help="comma-separated GPU ids, e.g. 0,1,2,3")
    p.add_argument("--lock-dir", required=True, help="directory for the per-GPU lock files")
    p.add_argument("--poll", type=float, default=1.0, help="seconds between tries when all GPUs are busy")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run")
    a = p.parse_args(argv)
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    gpus = [g.strip() for g in a.gpus.split(",") if g.strip()]
    if not cmd:
        p.error("give the command to run after --")
    if not gpus:
        p.error("--gpus: give at least one GPU id")
    gpu, lock = acquire(gpus, a.lock_dir, a.poll)
    try:
        print(f"gpu_slot: running on GPU {gpu}", file=sys.stderr, flush=True)
        return subprocess.call(cmd, env=dict(os.environ, CUDA_VISIBLE_DEVICES=gpu))
    finally:
        lock.close()


if __name__ == "__main__":
    sys.exit(main())
