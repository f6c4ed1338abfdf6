"""The CAMB files view's pure parts: which files an XCom lists, which may be served, byte ranges, the page."""

from __future__ import annotations

import re

import pytest

from airflow_provider_camb.plugins._listing import files_of, servable_path
from airflow_provider_camb.plugins._page import files_page
from airflow_provider_camb.plugins._ranges import ByteRange, RangeNotSatisfiable, requested_range

SHA = "ab" * 32


def entry(path: str, content_type: str = "audio/wav", size: int = 10) -> dict[str, object]:
    return {"path": path, "bytes": size, "sha256": SHA, "content_type": content_type}


def test_previews_are_listed_in_order_with_their_preview_numbers():
    files = files_of(
        [entry("/v/camb_run_7_preview_0.wav"), entry("s3://aws@b/v/camb_run_7_preview_1.mp3", "audio/mpeg")]
    )
    assert [(f.number, f.name, f.preview, f.player) for f in files] == [
        (0, "camb_run_7_preview_0.wav", 1, "audio"),
        (1, "camb_run_7_preview_1.mp3", 2, "audio"),
    ]


def test_a_dubbing_result_lists_each_language_s_files_and_skips_missing_video():
    value = {
        "fr-fr": {
            "audio": entry("/d/camb_dub_run_3_fr-fr_audio.wav"),
            "video": None,
            "transcript": entry("/d/camb_dub_run_3_fr-fr_transcript.json", "application/json"),
        },
        "de-de": {
            "audio": entry("/d/camb_dub_run_3_de-de_audio.wav"),
            "video": entry("/d/camb_dub_run_3_de-de_video.mp4", "video/mp4"),
            "transcript": entry("/d/camb_dub_run_3_de-de_transcript.json", "application/json"),
        },
    }
    files = files_of(value)
    assert [(f.label, f.player) for f in files] == [
        ("de-de audio", "audio"),
        ("de-de transcript", None),
        ("de-de video", "video"),
        ("fr-fr audio", "audio"),
        ("fr-fr transcript", None),
    ]


def test_one_file_and_malformed_entries():
    assert [f.name for f in files_of(entry("/s/camb_speech_run_5.flac", "audio/flac"))] == ["camb_speech_run_5.flac"]
    bad = [{"path": "/x/camb_run_1_preview_0.wav"}, {"path": 3, "bytes": 1, "sha256": SHA}, "text", None, 7]
    assert files_of(bad) == []
    assert files_of({"path": "/x/camb_run_1_preview_0.wav", "bytes": True, "sha256": SHA}) == []


def test_only_files_of_our_naming_scheme_outside_dot_segments_are_servable():
    assert servable_path("/data/voices/camb_run_12_preview_0.wav")
    assert servable_path("file:///data/voices/camb_speech_run_12.flac")
    assert servable_path("s3://my_aws@bucket/voices/camb_dub_run_4_fr-fr_video.mp4")
    for path in (
        "/etc/passwd",
        "relative/camb_run_1_preview_0.wav",
        "/data/../etc/camb_run_1_preview_0.wav",
        "/data/./camb_run_1_preview_0.wav",
        "s3://bucket/a/../camb_run_1_preview_0.wav",
        "file://host/data/camb_run_1_preview_0.wav",
        "/data/camb_run_1_preview_0.wav\x00.txt",
        "/home/airflow/airflow.cfg",
        "/data/camb_run_1_preview_0.wav?x=1",
        "https://storage/camb_run_1_preview_0.wav?token=secret",
        "/data/camb_run_1_preview_0.html.",
    ):
        assert not servable_path(path), path


def test_an_unknown_content_type_is_served_as_a_download_never_as_html():
    (file,) = files_of(entry("/v/camb_run_1_preview_0.wav", "text/html"))
    assert file.media_type == "application/octet-stream" and file.player is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-99", ByteRange(0, 99, 1000)),
        ("bytes=900-", ByteRange(900, 999, 1000)),
        ("bytes=-100", ByteRange(900, 999, 1000)),
        ("bytes=-5000", ByteRange(0, 999, 1000)),
        ("bytes=990-2000", ByteRange(990, 999, 1000)),
        ("bytes=5-1", None),  # invalid: ignored
        ("bytes=0-1,5-6", None),  # several ranges: the whole file
        ("items=0-1", None),
        ("bytes=-", None),
    ],
)
def test_requested_range(header, expected):
    assert requested_range(header, 1000) == expected


def test_a_range_past_the_end_is_not_satisfiable():
    with pytest.raises(RangeNotSatisfiable):
        requested_range("bytes=1000-", 1000)
    with pytest.raises(RangeNotSatisfiable):
        requested_range("bytes=-0", 1000)
    assert ByteRange(10, 19, 100).content_range == "bytes 10-19/100"


def test_the_page_escapes_what_the_xcom_says_and_runs_only_its_own_script():
    files = files_of([entry("/v/camb_run_1_preview_0.wav")])
    page = files_page("NONCE", "<dag> / run", files, "-1", note='<img src=x onerror="alert(1)">')
    assert "<dag>" not in page and "&lt;dag&gt;" in page
    assert "<img" not in page
    assert re.findall(r"<script[^>]*>", page) == ['<script nonce="NONCE">']
    assert 'src="-1/0/camb_run_1_preview_0.wav"' in page
    assert "Preview 1" in page and SHA in page
