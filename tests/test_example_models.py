"""The zoo as a whole: every example model is listed by `kipoi ls` through a
local Kipoi source (the README's instructions), with a sandboxed HOME."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOO = os.path.join(ROOT, 'example_models')
EXPECTED = ['basset_like', 'flatten_dense', 'gc_hmm_gru', 'motif_cnn', 'keras_motif', 'composite/stitched',
            'composite/merged', 'composite/from_predictions', 'composite/m1']


def _kipoi():
    exe = os.path.join(os.path.dirname(sys.executable), 'kipoi')
    if not os.path.exists(exe):
        pytest.fail("the kipoi executable is not installed next to this python")
    return exe


def test_kipoi_ls_lists_every_zoo_model(tmp_path):
    home = tmp_path / 'home'
    (home / '.kipoi').mkdir(parents=True)
    (home / '.kipoi' / 'config.yaml').write_text(
        "model_sources:\n"
        f"  tanger_zoo:\n    type: local\n    local_path: {ZOO}\n")
    env = dict(os.environ, HOME=str(home))
    def ls(*group):
        out = subprocess.run([_kipoi(), 'ls', *group, '--source', 'tanger_zoo'], env=env,
                             cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        return out

    top = ls().stdout.split()            # groups are folded: 'composite/ (8)'
    assert 'composite/' in top and 'motif_cnn' in top
    out = ls('all')
    listed = set(out.stdout.split())
    missing = [m for m in EXPECTED if m not in listed]
    assert not missing, f"kipoi ls did not list {missing}:\n{out.stdout}"
    # Kipoi never reached for its default git source.
    assert not (home / '.kipoi' / 'models').exists()
