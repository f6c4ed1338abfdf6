"""Run real DAGs with ``dag.test()`` and read back what happened, on Airflow 3.x and 2.11 alike."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

AIRFLOW_3 = int(__import__("airflow").__version__.split(".")[0]) >= 3
#: Airflow 3.3 brought the task state store (AIP-103): create operators' retries reattach through it.
HAS_TASK_STATE_STORE = tuple(int(part) for part in __import__("airflow").__version__.split(".")[:2]) >= (3, 3)


def migrate_database() -> None:
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)


@dataclass
class DagRunResult:
    """What a finished DAG run left behind."""

    dag_id: str
    run_id: str
    state: str
    task_states: dict[str, str | None] = field(default_factory=dict)
    #: (task_id, key) -> value for unmapped tasks; (task_id, key) -> [values by map index] for mapped ones.
    xcoms: dict[tuple[str, str], Any] = field(default_factory=dict)
    tries: dict[str, int] = field(default_factory=dict)

    def xcom(self, task_id: str, key: str = "return_value") -> Any:
        return self.xcoms[(task_id, key)]


class DagRunner:
    """``run(source)`` writes the DAG file, imports it, runs ``dag.test()`` and returns a ``DagRunResult``.

    The source must define a module-level ``dag`` whose dag_id is unique in the session; Airflow 3.3's
    ``dag.test()`` only runs DAGs it can sync from the DAGs folder, so the file is written there.
    """

    def __init__(self, dags_folder: Path) -> None:
        self.dags_folder = dags_folder

    def run(self, source: str, *, register_assets: bool = False, **test_kwargs: Any) -> DagRunResult:
        """Run the DAG; ``register_assets``: on Airflow 2, first register its datasets as the DAG processor
        would (Airflow 2's ``dag.test()`` does not, so without it no dataset event is recorded)."""
        source = textwrap.dedent(source)
        module_name = f"camb_test_dag_{abs(hash(source)) % 10**12}"
        path = self.dags_folder / f"{module_name}.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location(module_name, path)
        assert spec
        assert spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        dag = module.dag
        if register_assets and not AIRFLOW_3:
            dag.sync_to_db()
        dag_run = dag.test(**test_kwargs)
        return read_dag_run(dag.dag_id, dag_run.run_id)


def read_dag_run(dag_id: str, run_id: str) -> DagRunResult:
    from airflow.models import DagRun, TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        dag_run = session.query(DagRun).filter_by(dag_id=dag_id, run_id=run_id).one()
        result = DagRunResult(dag_id, run_id, str(dag_run.state))
        for ti in session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=run_id):
            state = None if ti.state is None else str(ti.state)
            if ti.map_index >= 0:
                result.task_states[f"{ti.task_id}[{ti.map_index}]"] = state
            else:
                result.task_states[ti.task_id] = state
            result.tries[ti.task_id] = ti.try_number
        mapped: dict[tuple[str, str], dict[int, Any]] = {}
        for row, value in _xcom_rows(session, dag_id, run_id):
            if row.map_index >= 0:
                mapped.setdefault((row.task_id, row.key), {})[row.map_index] = value
            else:
                result.xcoms[(row.task_id, row.key)] = value
        for key, by_index in mapped.items():
            result.xcoms[key] = [by_index[i] for i in sorted(by_index)]
        return result


def _xcom_rows(session: Any, dag_id: str, run_id: str) -> list[tuple[Any, Any]]:
    if AIRFLOW_3:
        from airflow.models.xcom import XComModel

        rows = session.query(XComModel).filter_by(dag_id=dag_id, run_id=run_id).all()
        return [(row, row.value) for row in rows]
    from airflow.models.xcom import XCom

    rows = session.query(XCom).filter_by(dag_id=dag_id, run_id=run_id).all()
    return [(row, row.value) for row in rows]  # Airflow 2 deserializes on load (BaseXCom.init_on_load)


def asset_events(dag_id: str, run_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(asset name, source task, extra) of every asset event a DAG run produced, from Airflow's database.

    On Airflow 2 the asset is a dataset and its name is its URI.
    """
    from airflow.utils.session import create_session

    if AIRFLOW_3:
        from airflow.models.asset import AssetEvent as Event
        from airflow.models.asset import AssetModel as Model

        link, label = Event.asset, Model.name
    else:
        from airflow.models.dataset import DatasetEvent as Event
        from airflow.models.dataset import DatasetModel as Model

        link, label = Event.dataset, Model.uri
    with create_session() as session:
        rows = (
            session.query(label, Event.source_task_id, Event.extra)
            .join(link)
            .filter(Event.source_dag_id == dag_id, Event.source_run_id == run_id)
            .all()
        )
        return [(name, task_id, dict(extra)) for name, task_id, extra in rows]
