"""Speech on tiny random models built here: a Whisper (its tokenizer built from a byte-level
vocabulary with Whisper's special and timestamp tokens), a Wav2Vec2 CTC model (a letter
vocabulary) and a Wav2Vec2 audio classifier, served by one server. A sentence spoken by
espeak-ng goes through /v1/audio/transcriptions with the openai SDK in every response format;
each transcript equals transformers' ``pipeline`` on the same folder (random models say
gibberish: equality is what counts). Bad audio (a WAV header claiming 10 hours, a file that
is not audio, an upload over the limit) is a clear 400/413, and the server answers after."""

from __future__ import annotations

import base64
import json
import shutil
import struct
import subprocess

import httpx
import numpy as np
import pytest

from random_whisper import save_random_whisper

from .conftest import serve_folders

LABELS = ["yes", "no", "silence"]
SENTENCE = "The quick brown fox jumps over the lazy dog."
MAX_AUDIO_BYTES = 2_000_000


def tiny_whisper(folder):
    # At most 24 new tokens (the pipeline's default is 256): a random model never stops
    # early, and both sides read this same file.
    return save_random_whisper(folder, seed=3, max_new_tokens=24, d_model=32,
                               encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                               decoder_attention_heads=2, encoder_ffn_dim=64,
                               decoder_ffn_dim=64)


def _wav2vec2_config(**extra):
    from transformers import Wav2Vec2Config

    return Wav2Vec2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                          intermediate_size=64, conv_dim=(16, 16), conv_stride=(5, 4),
                          conv_kernel=(10, 8), num_conv_pos_embeddings=16,
                          num_conv_pos_embedding_groups=2, **extra)


def tiny_ctc(folder):
    import torch
    from transformers import (
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    folder.mkdir(parents=True)
    letters = ["<pad>", "<s>", "</s>", "<unk>", "|", *"ABCDEFGHIJKLMNOPQRSTUVWXYZ'"]
    (folder / "vocab.json").write_text(json.dumps({c: i for i, c in enumerate(letters)}))
    tokenizer = Wav2Vec2CTCTokenizer(str(folder / "vocab.json"))
    torch.manual_seed(1)
    Wav2Vec2ForCTC(_wav2vec2_config(vocab_size=len(letters), pad_token_id=0)).eval(
        ).save_pretrained(folder)
    Wav2Vec2Processor(Wav2Vec2FeatureExtractor(), tokenizer).save_pretrained(folder)
    return folder


def tiny_classifier(folder):
    import torch
    from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification

    torch.manual_seed(2)
    config = _wav2vec2_config(num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
                              label2id={name: i for i, name in enumerate(LABELS)})
    Wav2Vec2ForSequenceClassification(config).eval().save_pretrained(folder)
    Wav2Vec2FeatureExtractor().save_pretrained(folder)
    return folder


def spoken(tmp, text: str = SENTENCE) -> bytes:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is missing: apt-get install -y espeak-ng")
    out = tmp / "spoken.wav"
    subprocess.run(["espeak-ng", "-w", str(out), text], check=True)
    return out.read_bytes()


def wav_header(size: int, rate: int = 16_000) -> bytes:
    """The header of a 16-bit mono PCM WAV whose data chunk claims ``size`` bytes."""
    return (b"RIFF" + struct.pack("<I", 36 + size) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
            + b"data" + struct.pack("<I", size))


def lying_wav(seconds: int = 36_000, rate: int = 16_000) -> bytes:
    """A WAV whose header claims ``seconds`` of audio and holds a few samples."""
    return wav_header(seconds * rate * 2, rate) + b"\0" * 3200


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("speech")
    return {"whisper": tiny_whisper(root / "whisper"), "ctc": tiny_ctc(root / "ctc"),
            "audio-cls": tiny_classifier(root / "audio-cls")}


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    return spoken(tmp_path_factory.mktemp("speech-audio"))


@pytest.fixture(scope="module")
def base(models, tmp_path_factory):
    yield from serve_folders(models, tmp_path_factory.mktemp("speech-server"),
                             max_audio_bytes=MAX_AUDIO_BYTES, max_audio_seconds=120)


@pytest.fixture(scope="module")
def client(base):
    from openai import OpenAI

    return OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0, timeout=300)


def samples(data: bytes, rate: int = 16_000) -> np.ndarray:
    from hfserve.media.audio import decode

    return decode(data, rate)


@pytest.fixture(scope="module")
def asr(models):
    from transformers import pipeline

    return {name: pipeline("automatic-speech-recognition", model=str(models[name]))
            for name in ("whisper", "ctc")}


def test_whisper_json_and_text_equal_the_pipeline(client, asr, audio):
    want = asr["whisper"](samples(audio), generate_kwargs={"language": "en"})["text"]
    got = client.audio.transcriptions.create(model="whisper", file=("s.wav", audio),
                                             language="en")
    assert got.text == want
    text = client.audio.transcriptions.create(model="whisper", file=("s.wav", audio),
                                              language="en", response_format="text")
    assert text == want


def test_whisper_verbose_json_segments_equal_the_pipeline(client, asr, audio):
    want = asr["whisper"](samples(audio), return_timestamps=True, return_language=True)
    got = client.audio.transcriptions.create(
        model="whisper", file=("s.wav", audio), response_format="verbose_json",
        timestamp_granularities=["segment"])
    assert got.text == want["text"]
    assert got.task == "transcribe"
    assert got.duration == pytest.approx(len(samples(audio)) / 16_000, abs=1e-3)
    assert [(s.start, s.text) for s in got.segments] == [
        (c["timestamp"][0], c["text"]) for c in want["chunks"]]
    detected = next((c["language"] for c in want["chunks"] if c.get("language")), None)
    assert got.language == detected


def test_word_timestamps_equal_the_pipeline(client, asr, audio):
    want = asr["whisper"](samples(audio), return_timestamps="word",
                          generate_kwargs={"language": "en"})
    got = client.audio.transcriptions.create(
        model="whisper", file=("s.wav", audio), language="en", response_format="verbose_json",
        timestamp_granularities=["word"])
    assert [w.word for w in got.words] == [c["text"].strip() for c in want["chunks"]]
    assert [w.start for w in got.words] == pytest.approx(
        [c["timestamp"][0] for c in want["chunks"]])


def _cues(text: str, vtt: bool) -> list[tuple[str, str, str]]:
    """(start, end, text) of each cue of an srt or vtt document; asserts its shape."""
    blocks = [b for b in text.strip().split("\n\n") if b]
    if vtt:
        assert blocks[0] == "WEBVTT"
        blocks = blocks[1:]
    cues = []
    for i, block in enumerate(blocks, 1):
        lines = block.split("\n")
        if not vtt:
            assert lines.pop(0) == str(i)
        start, arrow, end = lines[0].partition(" --> ")
        assert arrow
        sep = "." if vtt else ","
        for stamp in (start, end):
            clock, _, millis = stamp.partition(sep)
            assert len(millis) == 3 and len(clock.split(":")) == 3, stamp
        cues.append((start, end, "\n".join(lines[1:])))
    return cues


def _stamp(seconds: float, sep: str) -> str:
    whole = int(round(seconds * 1000))
    return (f"{whole // 3_600_000:02d}:{whole // 60_000 % 60:02d}:{whole // 1000 % 60:02d}"
            f"{sep}{whole % 1000:03d}")


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_subtitles_parse_and_follow_the_segments(client, asr, audio, fmt):
    want = asr["whisper"](samples(audio), return_timestamps=True,
                          generate_kwargs={"language": "en"})
    body = client.audio.transcriptions.create(model="whisper", file=("s.wav", audio),
                                              language="en", response_format=fmt)
    cues = _cues(body, vtt=fmt == "vtt")
    sep = "." if fmt == "vtt" else ","
    # Each segment that says something is a cue, its text on one line.
    said = [ch for ch in want["chunks"] if ch["text"].split()]
    assert [(c[0], c[2]) for c in cues] == [
        (_stamp(ch["timestamp"][0], sep), " ".join(ch["text"].split())) for ch in said]


def test_translation_equals_the_pipeline(client, asr, audio):
    want = asr["whisper"](samples(audio), generate_kwargs={"task": "translate"})["text"]
    got = client.audio.translations.create(model="whisper", file=("s.wav", audio))
    assert got.text == want


def test_long_audio_runs_in_30s_windows_as_the_pipeline(client, asr, audio):
    long = np.tile(samples(audio), int(np.ceil(40 * 16_000 / len(samples(audio)))))
    pcm = (np.clip(long, -1, 1) * 32767).astype("<i2").tobytes()
    wav = wav_header(len(pcm)) + pcm
    want = asr["whisper"](samples(wav), return_timestamps=True,
                          generate_kwargs={"language": "en"})
    got = client.audio.transcriptions.create(model="whisper", file=("long.wav", wav),
                                             language="en", response_format="verbose_json")
    assert got.duration > 30
    assert got.text == want["text"]
    assert [s.start for s in got.segments] == [c["timestamp"][0] for c in want["chunks"]]


def test_whisper_batches_concurrent_requests_as_alone(base, asr, audio, tmp_path):
    import concurrent.futures

    other = spoken(tmp_path, "Hello there, general speech.")
    wants = [asr["whisper"](samples(a), generate_kwargs={"language": "en"})["text"]
             for a in (audio, other)]

    def ask(data: bytes) -> str:
        reply = httpx.post(f"{base}/v1/audio/transcriptions", timeout=300,
                           headers={"Cache-Control": "no-cache"},
                           data={"model": "whisper", "language": "en"},
                           files={"file": ("a.wav", data, "audio/wav")})
        assert reply.status_code == 200, reply.text
        return reply.json()["text"]

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        got = list(pool.map(ask, [audio, other, audio, other]))
    assert got == wants * 2


def test_ctc_transcript_equals_the_pipeline(client, asr, audio):
    want = asr["ctc"](samples(audio))["text"]
    got = client.audio.transcriptions.create(model="ctc", file=("s.wav", audio))
    assert got.text == want
    words = asr["ctc"](samples(audio), return_timestamps="word")["chunks"]
    verbose = client.audio.transcriptions.create(
        model="ctc", file=("s.wav", audio), response_format="verbose_json",
        timestamp_granularities=["word", "segment"])
    assert [w.word for w in verbose.words] == [c["text"] for c in words]
    assert len(verbose.segments) == 1 and verbose.segments[0].text == want


def test_ctc_does_not_translate(client, audio):
    import openai

    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.translations.create(model="ctc", file=("s.wav", audio))
    assert "transcribes only" in caught.value.body["message"]


def test_audio_classification_equals_the_pipeline(base, models, audio):
    from transformers import pipeline

    want = pipeline("audio-classification", model=str(models["audio-cls"]))(
        samples(audio), top_k=len(LABELS))
    encoded = "data:audio/wav;base64," + base64.b64encode(audio).decode()
    reply = httpx.post(f"{base}/v1/classify", json={"model": "audio-cls", "input": [encoded]},
                       timeout=120)
    assert reply.status_code == 200, reply.text
    row = reply.json()["data"][0]
    assert row["label"] == want[0]["label"]
    by_label = dict(zip(LABELS, row["probs"], strict=True))
    for entry in want:
        assert by_label[entry["label"]] == pytest.approx(entry["score"], abs=1e-5)
    infer = httpx.post(f"{base}/v1/infer/audio-cls", timeout=120, json={
        "inputs": base64.b64encode(audio).decode(), "parameters": {"top_k": 2}})
    assert infer.status_code == 200, infer.text
    assert [r["label"] for r in infer.json()] == [r["label"] for r in want[:2]]


BAD = {
    "ten hours": (lying_wav(), 400, "over the limit"),
    "not audio": (b"%PDF-1.4 this is no audio at all " * 50, 400, "audio"),
    "over the limit": (b"\0" * (MAX_AUDIO_BYTES + 1), 413, "over the limit"),
    "empty": (b"", 400, "empty"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_audio_is_a_clear_error_and_the_server_still_answers(base, audio, name):
    data, status, words = BAD[name]
    reply = httpx.post(f"{base}/v1/audio/transcriptions", timeout=120,
                       data={"model": "whisper"}, files={"file": ("bad.wav", data)})
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert words in error["message"]
    assert error["param"] == "file"
    assert error["type"] == "invalid_request_error"
    canary = httpx.post(f"{base}/v1/audio/transcriptions", timeout=300,
                        data={"model": "ctc", "response_format": "text"},
                        files={"file": ("s.wav", audio)})
    assert canary.status_code == 200, canary.text


@pytest.mark.parametrize("form, param", [
    ({"model": "whisper", "response_format": "docx"}, "response_format"),
    ({"model": "whisper", "language": "klingon"}, "language"),
    ({"model": "whisper", "temperature": "3"}, "temperature"),
    ({"model": "audio-cls"}, "model"),
])
def test_bad_options_are_400s_naming_the_field(base, audio, form, param):
    reply = httpx.post(f"{base}/v1/audio/transcriptions", timeout=120, data=form,
                       files={"file": ("s.wav", audio)})
    assert reply.status_code in (400, 404), reply.text
    assert reply.json()["error"]["param"] == param
