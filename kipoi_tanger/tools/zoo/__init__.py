"""Contributor tooling for the model zoo.

* :mod:`~kipoi_tanger.tools.zoo.templates` — ``kipoi-tanger init``: a new model dir from ``model_templates/``
  (seeded weights and ``test.expect.h5`` included);
* :mod:`~kipoi_tanger.tools.zoo.checks` — ``kipoi-tanger test``: ``kipoi test`` plus a check per declared op.
"""
from .checks import OP_CHECKS, Check, TestReport, kipoi_executable, test
from .templates import (DATALOADER_MODES, DEFAULT_TEMPLATE, EXPECT_FILE, TEMPLATES_ENV, InitResult, Template,
                        ZooError, checkout_dir, init, is_within, list_templates, next_steps, parse_set, render,
                        run_script, shared_dataloader, templates_dir, write_expect)

__all__ = ["init", "test", "render", "write_expect", "run_script", "list_templates", "templates_dir",
           "shared_dataloader", "checkout_dir", "is_within", "next_steps", "parse_set", "Template", "InitResult",
           "Check", "TestReport", "ZooError", "OP_CHECKS", "kipoi_executable", "TEMPLATES_ENV", "DEFAULT_TEMPLATE",
           "EXPECT_FILE", "DATALOADER_MODES"]
