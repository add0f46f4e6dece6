"""Transcript rendering (srt, vtt, verbose_json) and the speech options' checks."""
from __future__ import annotations

import json

import pytest

from hfserve.api.transcripts import render, srt, vtt
from hfserve.errors import InvalidRequest
from hfserve.skills.speech_recognition import Segment, SpeechOptions, Transcript

TRANSCRIPT = Transcript(text=" Hello there. General", duration=3661.5, language="english",
                        segments=[Segment(0.0, 1.24, " Hello there."),
                                  Segment(1.24, 1.5, "  "),
                                  Segment(3600.5, None, " General\n\nKenobi")])


def test_srt_numbers_cues_and_uses_commas():
    assert srt(TRANSCRIPT) == ("1\n00:00:00,000 --> 00:00:01,240\nHello there.\n\n"
                               "2\n01:00:00,500 --> 01:01:01,500\nGeneral Kenobi\n")


def test_vtt_has_its_header_and_dots():
    assert vtt(TRANSCRIPT) == ("WEBVTT\n\n00:00:00.000 --> 00:00:01.240\nHello there.\n\n"
                               "01:00:00.500 --> 01:01:01.500\nGeneral Kenobi\n")


def test_verbose_json_closes_open_segments_at_the_audio_end():
    body = json.loads(render(TRANSCRIPT, "verbose_json", ("segment",), 0.0).body)
    assert body["language"] == "english"
    assert [s["end"] for s in body["segments"]] == [1.24, 1.5, 3661.5]
    assert body["segments"][2]["seek"] == 360000
    assert "words" not in body
    assert body["usage"] == {"type": "duration", "seconds": 3662}


@pytest.mark.parametrize("options, param", [
    ({"task": "summarize"}, "task"),
    ({"temperature": 1.5}, "temperature"),
    ({"timestamp_granularities": ["char"]}, "timestamp_granularities[]"),
])
def test_bad_speech_options_name_their_field(options, param):
    with pytest.raises(InvalidRequest) as caught:
        SpeechOptions.of(options)
    assert caught.value.param == param


def test_speech_options_are_normalised():
    chosen = SpeechOptions.of({"language": "EN", "timestamp_granularities": ["word", "word"]})
    assert chosen == SpeechOptions(language="en", granularities=("word",))
