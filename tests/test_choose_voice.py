"""The choice step without a deployment: its checks, the keep operator's ``choice``, and Airflow before 3.1.

The whole flow in a real deployment and browser is ``test_choice_deployment.py``.
"""

from __future__ import annotations

import importlib
from datetime import datetime

import pytest
from airflow.providers.common.compat.sdk import DAG, AirflowSkipException

from airflow_provider_camb.exceptions import CambAirflowVersionError, CambInputError
from airflow_provider_camb.operators._voice_choice import kept_preview
from airflow_provider_camb.operators.text_to_voice import CambCreateCustomVoiceOperator, TextToVoiceResultOperator
from airflow_provider_camb.version_compat import AIRFLOW_V_3_1_PLUS

needs_3_1 = pytest.mark.skipif(not AIRFLOW_V_3_1_PLUS, reason="human-in-the-loop needs Airflow 3.1+")
before_3_1 = pytest.mark.skipif(AIRFLOW_V_3_1_PLUS, reason="what Airflow before 3.1 does")


def test_none_of_these_skips_the_keep_and_a_bad_choice_fails_it():
    with pytest.raises(AirflowSkipException, match="chose 'None of these'"):
        kept_preview({"preview": None, "file": None, "voice_name": "N", "gender": 2, "responded_by": "ana"})
    with pytest.raises(CambInputError, match="return value of CambChooseVoiceOperator"):
        kept_preview("Preview 2")
    with pytest.raises(CambInputError, match="either choice or preview"):
        CambCreateCustomVoiceOperator(task_id="keep", choice={"preview": 0}, voice_name="N")


@needs_3_1
def test_the_choice_operator_offers_what_the_download_wrote_and_refuses_bad_arguments():
    from airflow_provider_camb.operators.text_to_voice import CambChooseVoiceOperator

    with DAG("choose_checks", start_date=datetime(2025, 1, 1), schedule=None):
        download = TextToVoiceResultOperator(task_id="download", run_id=1, destination="/tmp/v")
        choose = CambChooseVoiceOperator(task_id="choose", previews=download.output, voice_name="N", gender=2)
        with pytest.raises(CambInputError, match="download_task_id"):
            CambChooseVoiceOperator(task_id="c2", previews=[{"path": "/x"}], voice_name="N", gender=2)
        with pytest.raises(CambInputError, match="makes its own options"):
            CambChooseVoiceOperator(task_id="c3", previews=download.output, voice_name="N", gender=2, options=["A"])
    assert choose.download_task_id == "download" and choose.upstream_task_ids == {"download"}
    assert not choose.params  # the form is made at run time: its fields never shadow the DAG's params
    choose.previews = [{"path": "/v/camb_run_1_preview_0.wav"}] * 10
    with pytest.raises(CambInputError, match="at most 9"):
        choose._preview_files()


@before_3_1
def test_before_airflow_3_1_importing_the_choice_operator_says_3_1_is_needed():
    text_to_voice = importlib.import_module("airflow_provider_camb.operators.text_to_voice")
    with pytest.raises(CambAirflowVersionError, match=r"needs Airflow 3\.1\+.*preview=0"):
        text_to_voice.CambChooseVoiceOperator  # noqa: B018
    with pytest.raises(ImportError, match=r"Airflow 3\.1\+"):
        from airflow_provider_camb.operators.text_to_voice import CambChooseVoiceOperator  # noqa: F401


@before_3_1
def test_before_airflow_3_1_the_plugin_is_not_loaded_and_results_have_no_view_link():
    from airflow import plugins_manager

    from airflow_provider_camb.plugins.camb_files import CambFilesPlugin

    assert CambFilesPlugin is None
    plugins_manager.ensure_plugins_loaded()
    assert "camb_files" not in [plugin.name for plugin in plugins_manager.plugins or []]
    assert TextToVoiceResultOperator.operator_extra_links == ()
