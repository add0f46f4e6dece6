"""The web UI in a real browser (Debian's chromium, driven by Playwright) against real
servers: the demo models without keys, and MiniLM with tiny random classifiers, a reranker,
an image classifier, a token tagger, a DETR detector and a Whisper (built here) behind API
keys."""

from __future__ import annotations

import json
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
import pytest

from .conftest import CHAT, EMBED, MINILM, SMOL, launch, stop
from .images import data_url
from .test_classify import LABELS as TEXT_LABELS
from .test_classify import NER_TEXTS, tiny_classifier, tiny_tagger
from .test_speech import spoken, tiny_whisper
from .test_vision import LABELS as IMAGE_LABELS
from .test_vision import png_bytes, tiny_vit
from .test_vision_families import IMAGES as DETECT_IMAGES
from .test_vision_families import tiny_detr

playwright = pytest.importorskip("playwright.sync_api")
expect = playwright.expect

CHROMIUM = "/usr/bin/chromium"
KEY = "ui-Test-Key-For-The-Browser-5QZ"
WRONG_KEY = "wr0ng-ui-Key-Not-Configured-8X"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


def _config(tmp, models, **extra):
    return {"cache_dir": str(tmp / "cache"), "models": models, **extra}


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    if not (MINILM.exists() and SMOL.exists()):
        pytest.fail("demo models missing: run `make models`")
    if not os.path.exists(CHROMIUM):
        pytest.fail("chromium missing: apt-get install -y chromium")
    open_tmp = tmp_path_factory.mktemp("ui-open")
    keyed_tmp = tmp_path_factory.mktemp("ui-keyed")
    tiny = {"dtype": "float32", "threads": 1, "backend": "torch"}
    started = []
    try:
        started.append(launch(_config(open_tmp, [
            {"name": EMBED, "source": str(MINILM), "threads": 1, "backend": "torch"},
            {"name": CHAT, "source": str(SMOL), "threads": 1, "backend": "torch",
             "dtype": "float32"}]), open_tmp))
        started.append(launch(_config(keyed_tmp, [
            {"name": EMBED, "source": str(MINILM), "threads": 1, "backend": "torch"},
            {"name": "sentiment", "source": str(tiny_classifier(keyed_tmp / "cls")), **tiny},
            {"name": "reranker", "source": str(tiny_classifier(
                keyed_tmp / "rerank", labels={0: "LABEL_0"})), **tiny},
            {"name": "vit", "source": str(tiny_vit(keyed_tmp / "vit")), **tiny},
            {"name": "tagger", "source": str(tiny_tagger(keyed_tmp / "tagger")), **tiny},
            {"name": "detr", "source": str(tiny_detr(keyed_tmp / "detr")), **tiny},
            {"name": "whisper", "source": str(tiny_whisper(keyed_tmp / "whisper")), **tiny}],
            keys=[{"id": "ops", "key": KEY, "scopes": ["inference", "admin"]}]), keyed_tmp))
        yield {"open": started[0][1], "keyed": started[1][1]}
    finally:
        for proc, _, log in started:
            stop(proc, log)


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-background-networking",
                                           # a microphone that plays a tone, allowed
                                           "--use-fake-device-for-media-stream",
                                           "--use-fake-ui-for-media-stream"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    return tmp_path_factory.mktemp("ui-screenshots")


@pytest.fixture
def page(browser):
    """A fresh page; every request it makes and every console error is recorded, and none
    may go to a host other than this machine."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.requests, page.errors = [], []
    page.on("request", lambda r: page.requests.append(r.url))
    page.on("response", lambda r: page.errors.append(f"{r.status} {r.url}")
            if r.status == 404 else None)
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.set_default_timeout(60_000)
    expect.set_options(timeout=60_000)
    yield page
    hosts = {urlsplit(u).hostname for u in page.requests if not u.startswith(("data:", "blob:"))}
    context.close()
    assert page.requests, "the page made no request"
    assert hosts <= LOCAL_HOSTS, f"requests left this machine: {hosts}"


def _open(page, base: str):
    page.goto(f"{base}/ui")
    return page


def _log_in(page, base: str) -> None:
    _open(page, base)
    page.fill("#key", KEY)
    page.click("#login-form button[type=submit]")
    page.locator(f"#models tbody tr[data-model='{EMBED}']").wait_for()
    page.get_by_role("button", name="Playground").click()
    page.errors.clear()                  # the 401 that made the page ask for the key


def _completion_tokens(base: str) -> float:
    summary = httpx.get(f"{base}/metrics/summary", timeout=30).json()
    return summary["totals"]["tokens"].get("completion", 0)


def _table(page, selector: str) -> list[list[str]]:
    return page.eval_on_selector_all(
        f"{selector} tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))")


def test_the_dashboard_lists_the_models_with_their_devices(servers, page, shots):
    _open(page, servers["open"])
    rows = page.locator("#models tbody tr")
    expect(rows).to_have_count(2)
    for model in (EMBED, CHAT):
        row = page.locator(f"#models tbody tr[data-model='{model}']")
        assert row.locator(".badge").inner_text() == "ready"
        assert row.locator("td.device").inner_text().startswith("cpu")
    cards = httpx.get(f"{servers['open']}/v1/models", timeout=30).json()["data"]
    assert rows.count() == len(cards)
    # The device the models run on is among the hardware shown, with its memory.
    used = {c["device"] for c in cards}
    shown = page.locator(".device-card")
    shown.first.wait_for()
    ids = [shown.nth(i).get_attribute("data-device") for i in range(shown.count())]
    assert used <= set(ids), (used, ids)
    device = page.locator(f".device-card[data-device='{sorted(used)[0]}']")
    assert "memory" in device.inner_text() and "GiB" in device.inner_text()
    # The charts are fed: after a few polls the summary has a window.
    page.wait_for_timeout(4500)
    assert page.locator("#ready").inner_text() == "ready"
    assert not page.locator("#error").is_visible()
    assert not page.errors, page.errors
    page.screenshot(path=str(shots / "dashboard.png"), full_page=True)


def test_the_chat_playground_streams_the_answer(servers, page, shots):
    _open(page, servers["open"])
    page.get_by_role("button", name="Playground").click()
    tabs = page.locator("#tasks button")
    tabs.first.wait_for()
    labels = tabs.all_inner_texts()
    # Only the tasks the server serves: generation and embeddings, no rerank or classify.
    assert {"Chat", "Completions", "Embeddings"} <= set(labels)
    assert not {"Rerank", "Classify", "Image classification", "Entities",
                "Object detection", "Transcription"} & set(labels)
    page.get_by_role("button", name="Chat", exact=True).click()
    page.select_option("#pg-chat select.model", CHAT)
    page.fill("#chat-temperature", "0")
    page.fill("#chat-max-tokens", "24")
    page.fill("#chat-input", "What is the capital of France?")
    page.click("#chat-form button[type=submit]")
    reply = page.locator("#chat-log .msg.assistant span")
    expect(page.locator("#chat-stats")).to_contain_text("TTFT", timeout=120_000)
    assert "Paris" in reply.inner_text()
    stats = page.locator("#chat-stats").inner_text()
    assert "tokens/s" in stats and "TTFT" in stats
    assert not page.locator("#error").is_visible()
    page.screenshot(path=str(shots / "chat.png"), full_page=True)

    page.get_by_role("button", name="Completions").click()
    page.fill("#completion-temperature", "0")
    page.fill("#completion-max-tokens", "8")
    page.fill("#completion-prompt", "The capital of France is")
    page.click("#completion-form button[type=submit]")
    expect(page.locator("#completion-stats")).to_contain_text("tokens/s", timeout=120_000)
    assert "Paris" in page.locator("#completion-output").inner_text()


def test_stop_ends_the_stream_and_frees_the_slot(servers, page):
    base = servers["open"]
    _open(page, base)
    page.get_by_role("button", name="Playground").click()
    page.get_by_role("button", name="Chat", exact=True).click()
    page.select_option("#pg-chat select.model", CHAT)
    page.fill("#chat-max-tokens", "400")
    page.fill("#chat-input", "Write a long story about a dragon and a lighthouse.")
    before = _completion_tokens(base)
    page.press("#chat-input", "Enter")                 # Enter sends
    reply = page.locator("#chat-log .msg.assistant").last
    expect(reply.locator("span")).to_contain_text(re.compile(r"\w"), timeout=120_000)
    page.locator("#pg-chat button.stop").click()
    expect(reply).not_to_have_class(re.compile("streaming"))
    assert not page.locator("#error").is_visible()
    shown = int(re.search(r"(\d+) tokens", page.locator("#chat-stats").inner_text())[1])
    assert 0 < shown < 400
    # The server saw the client leave: the generation stopped about where the page did,
    # not at the end of the story or of max_tokens.
    deadline = time.monotonic() + 120
    while httpx.get(f"{base}/v1/models/{CHAT}", timeout=30).json()["in_flight"]:
        assert time.monotonic() < deadline, "the stopped generation kept running"
        time.sleep(0.5)
    assert _completion_tokens(base) - before <= shown + 48


def test_the_embeddings_playground_shows_a_similarity_matrix(servers, page, shots):
    _open(page, servers["open"])
    page.get_by_role("button", name="Playground").click()
    page.get_by_role("button", name="Embeddings").click()
    page.fill("#embeddings-input", "Paris is the capital of France.\n"
                                   "The capital of France is Paris.\nI like pizza.")
    page.click("#embeddings-form button[type=submit]")
    page.locator("#embeddings-matrix tbody tr").nth(2).wait_for()
    cells = [[float(c) for c in row[1:]] for row in _table(page, "#embeddings-matrix")]
    assert len(cells) == 3 and all(len(row) == 3 for row in cells)
    assert [cells[i][i] for i in range(3)] == [1.0, 1.0, 1.0]
    assert cells[0][1] == cells[1][0] and cells[0][1] > cells[0][2]
    # The dashboard's polls (every 2 s) leave the open tab and its results as they are.
    page.wait_for_timeout(2500)
    expect(page.get_by_role("button", name="Embeddings")).to_have_class(re.compile("active"))
    expect(page.locator("#embeddings-matrix tbody tr")).to_have_count(3)
    page.screenshot(path=str(shots / "embeddings.png"), full_page=True)


def test_unload_and_load_buttons(servers, page):
    _open(page, servers["open"])
    row = page.locator(f"#models tbody tr[data-model='{EMBED}']")
    row.locator("button[data-action=unload]").click()
    row.locator("button[data-action=load]").wait_for()
    assert httpx.get(f"{servers['open']}/v1/models/{EMBED}",
                     timeout=30).json()["state"] == "unloaded"
    row.locator("button[data-action=load]").click()
    row.locator("button[data-action=unload]").wait_for()
    assert row.locator(".badge").inner_text() == "ready"


def test_with_keys_the_page_asks_for_one_and_says_when_it_is_wrong(servers, page, shots):
    base = servers["keyed"]
    assert httpx.get(f"{base}/v1/models", timeout=30).status_code == 401
    _open(page, base)
    page.locator("#login").wait_for()
    assert "needs an API key" in page.locator("#error").inner_text()
    page.fill("#key", WRONG_KEY)
    page.click("#login-form button[type=submit]")
    expect(page.locator("#error")).to_contain_text("refused")
    message = page.locator("#error").inner_text()
    assert "invalid API key" in message
    assert page.locator("#login").is_visible()
    page.screenshot(path=str(shots / "wrong-key.png"), full_page=True)
    page.fill("#key", KEY)
    page.click("#login-form button[type=submit]")
    page.locator(f"#models tbody tr[data-model='{EMBED}']").wait_for()
    assert not page.locator("#error").is_visible()
    assert not page.locator("#login").is_visible()
    # The key went as a Bearer header, never in a URL.
    assert not any(KEY in url for url in page.requests)
    assert page.evaluate("sessionStorage.getItem('hfserve-api-key')") == KEY


def test_classify_rerank_and_image_playgrounds(servers, page, shots, tmp_path):
    base = servers["keyed"]
    _log_in(page, base)
    labels = page.locator("#tasks button").all_inner_texts()
    assert {"Embeddings", "Rerank", "Classify", "Image classification", "Entities",
            "Object detection", "Transcription"} <= set(labels)
    assert "Chat" not in labels                  # no generative model on this server

    page.get_by_role("button", name="Classify", exact=True).click()
    page.select_option("#pg-classify select.model", "sentiment")
    page.fill("#classify-input", "I loved this film.\nTerrible.")
    page.click("#classify-form button[type=submit]")
    expect(page.locator("#classify-results tbody tr")).to_have_count(2)
    got = httpx.post(f"{base}/v1/classify", timeout=60, headers={"authorization": f"Bearer {KEY}"},
                     json={"model": "sentiment", "input": ["I loved this film.", "Terrible."]})
    assert [[r[0], r[1]] for r in _table(page, "#classify-results")] == [
        ["I loved this film.", got.json()["data"][0]["label"]],
        ["Terrible.", got.json()["data"][1]["label"]]]
    assert {r[1] for r in _table(page, "#classify-results")} <= set(TEXT_LABELS.values())

    page.get_by_role("button", name="Rerank").click()
    page.fill("#rerank-query", "capital of France")
    page.fill("#rerank-documents", "Paris is in France.\nPizza is food.\nRome is in Italy.")
    page.click("#rerank-form button[type=submit]")
    expect(page.locator("#rerank-results tbody tr")).to_have_count(3)
    ranked = _table(page, "#rerank-results")
    scores = [float(r[1]) for r in ranked]
    assert scores == sorted(scores, reverse=True)
    assert sorted(r[2] for r in ranked) == ["Paris is in France.", "Pizza is food.",
                                            "Rome is in Italy."]

    page.get_by_role("button", name="Image classification").click()
    image = tmp_path / "noise.png"
    image.write_bytes(png_bytes(3))
    page.set_input_files("#image-file", str(image))
    expect(page.locator("#image-preview")).to_be_visible()
    page.click("#image-form button[type=submit]")
    expect(page.locator("#image-results tbody tr")).to_have_count(len(IMAGE_LABELS))
    rows = _table(page, "#image-results")
    assert {r[0] for r in rows} == set(IMAGE_LABELS)   # named from the model card
    assert abs(sum(float(r[1]) for r in rows) - 1) < 1e-3
    assert not page.locator("#error").is_visible()
    page.screenshot(path=str(shots / "image.png"), full_page=True)


def _open_tab(page, base: str, tab: str) -> None:
    _log_in(page, base)
    page.get_by_role("button", name=tab).click()


def _clean(page, shots, name: str) -> None:
    """No error shown or logged; the page is kept as ``name``.png."""
    assert not page.locator("#error").is_visible()
    assert not page.errors, page.errors
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)


def _keyed_post(base: str, path: str, body: dict):
    reply = httpx.post(f"{base}{path}", json=body, timeout=60,
                       headers={"authorization": f"Bearer {KEY}"})
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_the_entities_playground_marks_the_spans_the_server_finds(servers, page, shots):
    base = servers["keyed"]
    _open_tab(page, base, "Entities")
    text = NER_TEXTS[0]
    page.fill("#ner-input", text)
    page.click("#ner-form button[type=submit]")
    page.locator("#ner-output[data-entities]").wait_for()
    want = _keyed_post(base, "/v1/infer/tagger", {
        "inputs": text, "parameters": {"aggregation_strategy": "simple"}})
    assert want                                   # the tiny tagger names things
    marks = page.eval_on_selector_all("#ner-output mark", "ms => ms.map(m => "
                                      "[m.textContent, m.dataset.group, m.title])")
    assert [(m[0], m[1]) for m in marks] == [(text[e["start"]:e["end"]], e["entity_group"])
                                             for e in want]
    assert [float(m[2].split()[-1]) for m in marks] == pytest.approx(
        [e["score"] for e in want], abs=1e-3)
    # The text around the marks is the input, unchanged.
    assert page.locator("#ner-output").text_content() == text
    _clean(page, shots, "entities")


def test_the_detection_playground_draws_the_boxes_the_server_finds(servers, page, shots,
                                                                  tmp_path):
    base = servers["keyed"]
    _open_tab(page, base, "Object detection")
    image = tmp_path / "scene.png"
    image.write_bytes(DETECT_IMAGES[0])
    page.set_input_files("#detect-file", str(image))
    page.fill("#detect-threshold", "0.13")
    expect(page.locator("#detect-threshold-value")).to_have_text("0.13")
    page.click("#detect-form button[type=submit]")
    canvas = page.locator("#detect-canvas[data-boxes]")
    canvas.wait_for()
    want = _keyed_post(base, "/v1/detect", {"model": "detr", "threshold": 0.13,
                                            "input": [data_url(DETECT_IMAGES[0])]})
    objects = want["data"][0]["objects"]
    assert objects and int(canvas.get_attribute("data-boxes")) == len(objects)
    # The canvas holds the image, a whole number of times its own size, boxes drawn over it.
    scale = int(canvas.get_attribute("data-scale"))
    assert scale >= 1 and page.evaluate(
        "[document.querySelector('#detect-canvas').width, "
        "document.querySelector('#detect-canvas').height]") == [48 * scale, 40 * scale]
    assert f"{len(objects)} object" in page.locator("#detect-stats").inner_text()
    _clean(page, shots, "detect")


def test_the_transcription_playground_shows_the_text_and_segments(servers, page, shots,
                                                                   tmp_path):
    base = servers["keyed"]
    _open_tab(page, base, "Transcription")
    audio = spoken(tmp_path)
    (tmp_path / "speech.wav").write_bytes(audio)
    page.set_input_files("#transcribe-file", str(tmp_path / "speech.wav"))
    page.click("#transcribe-form button[type=submit]")
    page.locator("#transcribe-segments tbody").wait_for(timeout=180_000)
    reply = httpx.post(f"{base}/v1/audio/transcriptions", timeout=180,
                       headers={"authorization": f"Bearer {KEY}"},
                       data={"model": "whisper", "response_format": "verbose_json"},
                       files={"file": ("speech.wav", audio, "audio/wav")})
    assert reply.status_code == 200, reply.text
    want = reply.json()
    assert page.locator("#transcribe-text").text_content() == want["text"]
    assert want["segments"]
    assert _table(page, "#transcribe-segments") == [
        [f"{s['start']:.2f}", f"{s['end']:.2f}", s["text"]] for s in want["segments"]]
    _clean(page, shots, "transcription")

    # A recording made in the page (webm from MediaRecorder) is transcribed as well.
    page.context.grant_permissions(["microphone"])
    page.click("#transcribe-record")
    expect(page.locator("#transcribe-record")).to_have_text("Stop recording")
    page.wait_for_timeout(1500)
    page.click("#transcribe-record")
    expect(page.locator("#transcribe-source")).to_contain_text("recording")
    assert page.locator("#transcribe-file").input_value() == ""
    page.evaluate("document.querySelector('#transcribe-segments').replaceChildren()")
    page.click("#transcribe-form button[type=submit]")
    page.locator("#transcribe-segments tbody tr").first.wait_for(timeout=180_000)
    assert not page.locator("#error").is_visible()
    assert not page.errors, page.errors


@pytest.mark.parametrize(("tab", "panel", "name", "kind"), [
    ("Image classification", "image", "x.png", "image"),
    ("Object detection", "detect", "x.png", "image"),
    ("Transcription", "transcribe", "x.wav", "audio")])
def test_a_bad_request_shows_the_server_message(servers, page, tab, panel, name, kind):
    _open_tab(page, servers["keyed"], tab)
    page.set_input_files(f"#{panel}-file", files=[{"name": name, "mimeType": f"{kind}/x",
                                                   "buffer": b"not a file of that kind"}])
    page.click(f"#{panel}-form button[type=submit]")
    expect(page.locator("#error")).to_be_visible()
    assert kind in page.locator("#error").inner_text().lower()


def test_the_charts_draw_the_traffic_they_see(servers, page, shots):
    """Traffic for a few polls: the summary the page charts counts it, and the dashboard
    screenshot (docs/ui.png is one) shows it."""
    base = servers["open"]
    _open(page, base)
    page.locator(f"#models tbody tr[data-model='{CHAT}']").wait_for()

    def traffic(i: int) -> None:
        with httpx.Client(base_url=base, timeout=120) as http:
            for _ in range(6):
                http.post("/v1/embeddings", json={"model": EMBED, "input": ["a b c"] * (i + 1)}
                          ).raise_for_status()
            http.post("/v1/chat/completions", json={
                "model": CHAT, "max_tokens": 16, "messages": [
                    {"role": "user", "content": "Name three colours."}]}).raise_for_status()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(traffic, range(4)))
    page.wait_for_timeout(4500)
    summary = httpx.get(f"{base}/metrics/summary", timeout=30).json()
    assert summary["totals"]["requests"] >= 28
    assert summary["totals"]["tokens"]["completion"] >= 4
    # The charts plot what the summary says: traffic in the window, tokens, latencies.
    def latest(chart: str) -> list:
        return json.loads(page.get_attribute(f"#chart-{chart}", "data-latest"))

    assert latest("requests")[0] > 0
    assert latest("tokens")[0] > 0                       # completion tokens/s
    p50, p90, p99 = latest("latency")
    assert 0 < p50 <= p90 <= p99
    assert latest("batch")[0] > 0
    path = shots / "ui.png"
    page.screenshot(path=str(path), full_page=True)
