"""The media results (speech, sound), streamed from the API or fetched by their link: a result cut off on every
try leaves no file; one cut off once is fetched again and saved whole under its final name."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_camb.exceptions import CambConnectionError
from airflow_provider_camb.kinds import kind_of
from airflow_provider_camb.operators.text_to_sound import CambTextToSoundResultOperator
from airflow_provider_camb.operators.text_to_speech import CambTextToSpeechResultOperator
from tests.shared import finished_run, result_of, sha256_of, wav_seconds

#: Each way to a media result: its result operator, kind and output type, the endpoint that is cut off, and
#: what the error says (``{run_id}``: the run's).
MEDIA_RESULTS = {
    "speech": (
        CambTextToSpeechResultOperator,
        "tts",
        "RAW_BYTES",
        "result",
        "text-to-speech run {run_id} failed after",
    ),
    "sound": (CambTextToSoundResultOperator, "text-to-sound", "RAW_BYTES", "result", "cut off"),
    "sound link": (CambTextToSoundResultOperator, "text-to-sound", "FILE_URL", "media", "cut off"),
}
media_results = pytest.mark.parametrize(
    ("operator", "kind", "output_type", "endpoint", "error"), MEDIA_RESULTS.values(), ids=MEDIA_RESULTS
)


@media_results
def test_a_media_result_cut_off_on_every_try_leaves_no_file(
    camb_connection, tmp_path, operator, kind, output_type, endpoint, error
):
    run_id = finished_run(camb_connection, kind)
    camb_connection.inject("truncate", endpoint=endpoint, times=3)  # every try (1 + 2 retries)
    with pytest.raises(CambConnectionError, match=error.format(run_id=run_id)):
        result_of(operator, run_id, tmp_path, output_type=output_type)
    assert camb_connection.request_count(endpoint) == 3
    assert list(tmp_path.iterdir()) == []


@media_results
def test_a_media_result_cut_off_once_is_fetched_again_whole(
    camb_connection, tmp_path, operator, kind, output_type, endpoint, error
):
    run_id = finished_run(camb_connection, kind)
    camb_connection.inject("truncate", endpoint=endpoint)
    saved = result_of(operator, run_id, tmp_path, output_type=output_type)
    assert camb_connection.request_count(endpoint) == 2
    assert sha256_of(Path(saved["path"])) == saved["sha256"]
    assert wav_seconds(Path(saved["path"])) == pytest.approx(1.0, abs=0.01)
    assert [p.name for p in tmp_path.iterdir()] == [f"camb_{kind_of(kind).media}_run_{run_id}.wav"]
