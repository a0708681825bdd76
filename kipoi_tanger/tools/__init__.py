"""Tools over kipoi_tanger's result files and the model zoo: zoo (init/test), plots, report, exports,
genome-browser tracks and seqlets. They read the HDF5 files the ops write; none of them runs an op."""
