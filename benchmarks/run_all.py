"""Run every benchmarks/bench_*.py in turn (each writes benchmarks/results/<name>.json)."""
import glob
import os
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
failed = []
for script in sorted(glob.glob(os.path.join(here, 'bench_*.py'))):
    print(f"== {os.path.basename(script)}", flush=True)
    if subprocess.call([sys.executable, script] + sys.argv[1:]) != 0:
        failed.append(os.path.basename(script))
print("results in", os.path.join(here, 'results'))
sys.exit(1 if failed else 0)
