"""Fixtures of the secure-mode tests: a provisioned NVFlare project running on localhost."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from provisioned import ProvisionedFederation, provisioned_federation

from fl_tasks.data import SITE_DATA_ENV
from flareflow.config import load_pipeline_config
from flareflow.local.stack import demo_source
from flareflow.paths import config_dir


@pytest.fixture(scope="module")
def secure_federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProvisionedFederation]:
    """Provision the configured hospitals with TLS kits, start them all; stop them after the module."""
    config = load_pipeline_config(config_dir()).job("stats")
    # each hospital reads its data from its own kit, never from a shared folder
    env = {key: value for key, value in os.environ.items() if key != SITE_DATA_ENV}
    with provisioned_federation(tmp_path_factory.mktemp("secure"), config.federation.sites,
                                demo_source(), config.data.file_name,
                                env) as federation:
        yield federation
