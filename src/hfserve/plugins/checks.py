"""What the tests ``hfserve skill new`` writes run: per task, the inputs (module-level code),
how the reference is built from the tiny folder (``tiny``) and the check comparing the served
answer (``client``, a TestClient) with it. Each snippet is indented for the test function it
lands in."""

from __future__ import annotations

import json

TEXT_INPUTS = 'TEXTS = ["The cat sat on the mat.", "A quick brown fox jumps", "hello"]\n'

CHECK_EMBEDDING = """\
    got = client.post("/v1/embeddings", json={"model": "tiny", "input": TEXTS})
    assert got.status_code == 200, got.text
    vectors = np.array([d["embedding"] for d in got.json()["data"]])
    # hfserve pools a plain model's tokens by their mean, as sentence-transformers does.
    want = np.array([np.mean(reference(text)[0], axis=0) for text in TEXTS])
    np.testing.assert_allclose(vectors, want, atol=1e-4)
"""
CHECK_CLASSIFICATION = """\
    got = client.post("/v1/classify", json={"model": "tiny", "input": TEXTS})
    assert got.status_code == 200, got.text
    for row, text in zip(got.json()["data"], TEXTS, strict=True):
        want = {r["label"]: r["score"] for r in reference(text, top_k=None)}
        assert row["label"] == max(want, key=want.get)
        labels = [want[label] for label in sorted(want)]
        names = client.get("/v1/models/tiny").json()["labels"]
        got_scores = dict(zip(names, row["probs"], strict=True))
        np.testing.assert_allclose([got_scores[label] for label in sorted(want)], labels,
                                   atol=1e-4)
"""
CHECK_GENERATION = """\
    import torch

    tokenizer, model = reference.tokenizer, reference.model
    for text in TEXTS:
        got = client.post("/v1/completions", json={"model": "tiny", "prompt": text,
                                                  "max_tokens": 8, "temperature": 0})
        assert got.status_code == 200, got.text
        # The new tokens' text alone, as a server streams it (the pipeline's
        # return_full_text=False cuts the prompt's text out of the whole decoded instead).
        ids = tokenizer(text, return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8,
                                 do_sample=False)
        want = tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
        assert got.json()["choices"][0]["text"] == want
"""
CHECK_TEXT2TEXT = """\
    import torch

    tokenizer, model = reference
    for text in TEXTS:
        got = client.post("/v1/completions", json={"model": "tiny", "prompt": text,
                                                  "max_tokens": 8, "temperature": 0})
        assert got.status_code == 200, got.text
        ids = tokenizer(text, return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            # Greedy, one beam: what the server decodes, whatever the folder's
            # generation_config.json suggests.
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8,
                                 do_sample=False, num_beams=1)
        # The decoder's start token opens the output; the answer is what follows it.
        want = tokenizer.decode(out[0, 1:], skip_special_tokens=True)
        assert got.json()["choices"][0]["text"] == want
"""
CHECK_TOKEN_CLASSIFICATION = """\
    got = client.post("/v1/infer/tiny", json={
        "inputs": TEXTS, "parameters": {"aggregation_strategy": "simple"}})
    assert got.status_code == 200, got.text
    want = reference(TEXTS, aggregation_strategy="simple")
    for got_rows, want_rows in zip(got.json(), want, strict=True):
        assert [{k: v for k, v in e.items() if k != "score"} for e in got_rows] == \\
            [{k: v for k, v in e.items() if k != "score"} for e in want_rows]
        np.testing.assert_allclose([e["score"] for e in got_rows],
                                   [float(e["score"]) for e in want_rows], atol=1e-4)
"""
CHECK_FILL_MASK = """\
    mask = reference.tokenizer.mask_token
    texts = [f"The capital of France is {mask}.", f"{mask} is a good day."]
    got = client.post("/v1/infer/tiny", json={"inputs": texts, "parameters": {"top_k": 3}})
    assert got.status_code == 200, got.text
    for got_one, text in zip(got.json(), texts, strict=True):
        want = reference(text, top_k=3)
        assert [g["token"] for g in got_one] == [w["token"] for w in want]
        assert [g["sequence"] for g in got_one] == [w["sequence"] for w in want]
        np.testing.assert_allclose([g["score"] for g in got_one],
                                   [w["score"] for w in want], atol=1e-4)
"""
CHECK_IMAGE_CLASSIFICATION = """\
    config = reference.model.config
    labels = [config.id2label[i] for i in range(config.num_labels)]
    got = client.post("/v1/classify", json={"model": "tiny",
                                            "input": [data_url(b) for b in IMAGES]})
    assert got.status_code == 200, got.text
    for row, image in zip(got.json()["data"], decoded(IMAGES), strict=True):
        want = {r["label"]: r["score"] for r in reference(image, top_k=len(labels))}
        assert row["label"] == max(want, key=want.get)
        np.testing.assert_allclose(row["probs"], [want[label] for label in labels],
                                   atol=1e-4)
"""
CHECK_ZERO_SHOT_IMAGE = """\
    labels = ["a cat", "a dog", "a car"]
    got = client.post("/v1/classify", json={"model": "tiny", "candidate_labels": labels,
                                            "input": [data_url(b) for b in IMAGES]})
    assert got.status_code == 200, got.text
    for row, image in zip(got.json()["data"], decoded(IMAGES), strict=True):
        want = {r["label"]: r["score"] for r in reference(image, candidate_labels=labels)}
        assert row["label"] == max(want, key=want.get)
        np.testing.assert_allclose(row["probs"], [want[label] for label in labels],
                                   atol=1e-4)
"""
CHECK_SPEECH_RECOGNITION = """\
    from hfserve.media.audio import decode

    # Whisper is told the language (else each side detects one); CTC takes none.
    whisper = reference.type == "seq2seq_whisper"
    form = {"model": "tiny", **({"language": "en"} if whisper else {})}
    options = {"generate_kwargs": {"language": "en"}} if whisper else {}
    for sound in SOUNDS:
        got = client.post("/v1/audio/transcriptions", data=form,
                          files={"file": ("sound.wav", sound, "audio/wav")})
        assert got.status_code == 200, got.text
        want = reference(decode(sound, 16_000), **options)["text"]
        assert got.json()["text"] == want
"""

IMAGE_INPUTS = '''\
def png(seed: int, width: int, height: int) -> bytes:
    """A PNG of random pixels."""
    import io

    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def data_url(data: bytes) -> str:
    import base64

    return "data:image/png;base64," + base64.b64encode(data).decode()


def decoded(blobs: list[bytes]) -> list:
    """Each PNG as the RGB image the pipeline is given."""
    import io

    from PIL import Image

    return [Image.open(io.BytesIO(b)).convert("RGB") for b in blobs]


IMAGES = [png(1, 40, 40), png(2, 57, 31), png(3, 20, 20)]
'''
AUDIO_INPUTS = '''\
def wav(seed: int, seconds: float, rate: int = 16_000) -> bytes:
    """A 16-bit mono WAV: a tone under noise (a random model hears gibberish in anything)."""
    import io
    import wave

    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(seed).normal(0, 0.1, t.size)
    samples = np.clip(0.5 * np.sin(2 * np.pi * (220 + 110 * seed) * t) + noise, -1, 1)
    out = io.BytesIO()
    with wave.open(out, "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(rate)
        file.writeframes((samples * 32767).astype("<i2").tobytes())
    return out.getvalue()


SOUNDS = [wav(1, 1.0), wav(2, 2.5)]
'''
# The pipelines of image tasks take the PIL image processor the server loads (transformers'
# default class needs torchvision, which a CPU install may lack).
IMAGE_REFERENCE = """\
    from types import SimpleNamespace

    from transformers import pipeline

    from hfserve.skills.image_processing import image_processor

    reference = pipeline({task}, model=str(tiny), device="cpu",
                         image_processor=image_processor(SimpleNamespace(path=tiny)))
"""
SEQ2SEQ_REFERENCE = """\
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    reference = (AutoTokenizer.from_pretrained(str(tiny)),
                 AutoModelForSeq2SeqLM.from_pretrained(str(tiny)).eval())
"""


def pipeline_reference(task: str) -> str:
    return ('    from transformers import pipeline\n\n'
            f'    reference = pipeline({json.dumps(task)}, model=str(tiny), device="cpu")\n')


def image_reference(task: str) -> str:
    return IMAGE_REFERENCE.format(task=json.dumps(task))
