"""Regenerate test.expect.h5: Kipoi's expected inputs and predictions on the example files.

    python make_expect.py [--batch_size 32]

Runs Kipoi's own ``kipoi test -o`` pipeline (``pipeline.predict_example``)
in-process through ``kipoi_tanger.tools.zoo.write_expect`` and replaces
test.expect.h5 (Kipoi itself refuses to overwrite). Run it whenever model.py,
module_kwargs, the weights or the example files change, then commit the file.

Without kipoi_tanger (numpy < 2, since Kipoi 0.8.6's HDF5 writer needs
``np.string_``): ``rm test.expect.h5 && kipoi test DIR --source dir -o DIR/test.expect.h5``.
"""
import argparse
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None):
    p = argparse.ArgumentParser(description="Regenerate test.expect.h5 from the example files.")
    p.add_argument("--batch_size", type=int, default=32, help="batch size (default 32)")
    p.add_argument("--model_dir", default=HERE, help="model dir (default: this script's dir)")
    a = p.parse_args(argv)
    from kipoi_tanger.tools.zoo import write_expect
    path = write_expect(a.model_dir, batch_size=a.batch_size)
    print("wrote {}".format(path))
    return path


if __name__ == "__main__":
    main()
