import os
import sys
import tempfile

import pytest

# Shared toy architectures and the seed parser live next to the tests.
sys.path.insert(0, os.path.dirname(__file__))

# Kipoi reads (and creates) ~/.kipoi/config.yaml with its default git source at
# import time; point HOME at a throwaway directory before anything imports kipoi
# so no test can ever touch the user's config or the network.
if not os.environ.get('KIPOI_TANGER_TEST_HOME'):
    os.environ['KIPOI_TANGER_TEST_HOME'] = tempfile.mkdtemp(prefix='kipoi-tanger-home-')
os.environ['HOME'] = os.environ['KIPOI_TANGER_TEST_HOME']
os.environ.setdefault('MPLBACKEND', 'Agg')


@pytest.fixture(scope='module')
def one_thread():
    """One torch thread for a module of many small ops: on a shared 2-core machine OpenMP's second
    thread mostly waits (``pytestmark = pytest.mark.usefixtures('one_thread')``)."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
