"""Contributor tooling for the model zoo.

* :mod:`~kipoi_tanger.tools.zoo.data` — where the shipped example zoo, templates, shared dataloaders and
  workflows lie (``kipoi-tanger zoo``), in an installed wheel or a source checkout;
* :mod:`~kipoi_tanger.tools.zoo.templates` — ``kipoi-tanger init``: a new model dir from ``model_templates/``
  (seeded weights and ``test.expect.h5`` included);
* :mod:`~kipoi_tanger.tools.zoo.checks` — ``kipoi-tanger test``: ``kipoi test`` plus a check per declared op.
"""
from .checks import OP_CHECKS, Check, TestReport, kipoi_executable, test
from .data import DATA_DIRS, ZOO_SOURCE, ZooError, add_kipoi_source, data_dir, data_dirs, kipoi_source_config
from .templates import (DATALOADER_MODES, DEFAULT_TEMPLATE, EXPECT_FILE, TEMPLATES_ENV, InitResult, Template, init,
                        is_within, list_templates, next_steps, parse_set, render, run_script, shared_dataloader,
                        templates_dir, write_expect)

__all__ = ["init", "test", "render", "write_expect", "run_script", "list_templates", "templates_dir",
           "shared_dataloader", "data_dir", "data_dirs", "kipoi_source_config", "add_kipoi_source", "is_within", "next_steps",
           "parse_set", "Template", "InitResult", "Check", "TestReport", "ZooError", "OP_CHECKS", "kipoi_executable",
           "TEMPLATES_ENV", "DEFAULT_TEMPLATE", "EXPECT_FILE", "DATALOADER_MODES", "DATA_DIRS", "ZOO_SOURCE"]
