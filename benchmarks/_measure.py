"""Measurement helpers shared by the benchmarks."""
import os
import threading
import time


class RSSSampler:
    """Peak *current* RSS (MiB) while active, sampled from /proc every millisecond.

    ``ru_maxrss`` is a process-lifetime high-water mark that imports already set,
    so it cannot show what one call adds; this can (``peak - now()`` before).
    """

    def __init__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.peak = self.now()

    @staticmethod
    def now():
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2 ** 20

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.now())
            time.sleep(0.001)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.now())
