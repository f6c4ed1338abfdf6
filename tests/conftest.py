"""Test set-up: a private AIRFLOW_HOME migrated once per session, the CAMB stand-in, and a DAG runner.

The environment is set before Airflow is imported anywhere, so every test (and every subprocess
started by one) uses this session's temporary Airflow home, never the developer's.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

_HOME = Path(tempfile.mkdtemp(prefix="camb-airflow-home-"))
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
os.environ.update(
    {
        "AIRFLOW_HOME": str(_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(_HOME / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME / 'airflow.db'}",
        "AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES_REGEXP": r"(airflow|airflow_provider_camb)\..*",
    }
)
(_HOME / "dags").mkdir()

from tests import loopback_only  # noqa: E402

loopback_only.install()  # before any test, fixture or plugin opens a socket

import pytest  # noqa: E402

from airflow_provider_camb.testing import CambStandIn  # noqa: E402
from tests.airflow_harness import DagRunner, migrate_database  # noqa: E402
from tests.object_storage import MotoS3  # noqa: E402
from tests.shared import MEDIA, connect, create_and_save_in_a_dag  # noqa: E402

pytest_plugins = ["airflow_provider_camb.testing.pytest_plugin"]


@pytest.fixture(scope="session")
def airflow_home() -> Path:
    """This session's AIRFLOW_HOME, its database migrated once."""
    migrate_database()
    return _HOME


@pytest.fixture
def camb_connection(camb_standin: CambStandIn, monkeypatch: pytest.MonkeyPatch) -> CambStandIn:
    """The stand-in as the ``camb_default`` connection (AIRFLOW_CONN_CAMB_DEFAULT), with fast retries.

    ``FAST_RETRIES``: 2 retries, backoff in milliseconds, so faults cost no test time.
    """
    return connect(monkeypatch, camb_standin)


@pytest.fixture
def camb(camb_connection: CambStandIn) -> CambStandIn:
    """The stand-in for batches (``tests/test_batch*.py``): ``camb_connection``, its tasks pending 0.3 s."""
    camb_connection.configure(pending_seconds=0.3)
    return camb_connection


@pytest.fixture
def run_dag(airflow_home: Path) -> DagRunner:
    """Write a DAG into the DAGs folder, import that file and run it with ``dag.test()``."""
    return DagRunner(airflow_home / "dags")


@pytest.fixture
def create_and_save(
    run_dag: DagRunner, camb_connection: CambStandIn, capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> Callable[..., tuple[Any, int, str]]:
    """``shared.create_and_save_in_a_dag`` on the stand-in, saving into ``tmp_path``."""
    return functools.partial(create_and_save_in_a_dag, run_dag, camb_connection, capfd, tmp_path)


@pytest.fixture
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``shared.MEDIA`` as the file ``media.wav``, in a folder of its own (not ``tmp_path``, where results go)."""
    path = tmp_path_factory.mktemp("media") / "media.wav"
    path.write_bytes(MEDIA)
    return path


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    """An S3 API server (moto) on loopback for the whole session."""
    with MotoS3() as server:
        yield server


@pytest.fixture
def s3_connection(moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch) -> MotoS3:
    """moto wired as the ``aws`` connection ``camb_s3`` (AIRFLOW_CONN_CAMB_S3); no AWS_* variables apply."""
    for name in [name for name in os.environ if name.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask a cloud metadata address
    monkeypatch.setenv("AIRFLOW_CONN_CAMB_S3", moto_s3.connection_json())
    return moto_s3
