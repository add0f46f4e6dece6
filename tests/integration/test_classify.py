"""Sequence classification through POST /v1/classify and reranking through /v1/rerank and
/v1/score, on tiny random classifiers built here (MiniLM's tokenizer, a small BERT config):
labels and scores equal to transformers' text-classification pipeline and to
sentence-transformers' CrossEncoder, on eager torch and on OpenVINO, alone and in mixed
batches."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest

from .conftest import MINILM, launch, stop

TEXTS = ["I loved this film.", "Terrible, a waste of two hours and of popcorn too.", "ok",
         "The plot was thin but the actors carried it with charm and timing."]
LABELS = {0: "negative", 1: "positive", 2: "neutral"}


def tiny_classifier(folder, *, multi_label: bool = False, labels: dict | None = None):
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=128, id2label=labels or LABELS,
                        label2id={v: k for k, v in (labels or LABELS).items()},
                        problem_type="multi_label_classification" if multi_label else None)
    BertForSequenceClassification(config).eval().save_pretrained(folder)
    AutoTokenizer.from_pretrained(str(MINILM)).save_pretrained(folder)
    return folder


NLI = {0: "contradiction", 1: "neutral", 2: "entailment"}
TAGS = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}


def tiny_tagger(folder):
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForTokenClassification

    torch.manual_seed(1)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=128, id2label=TAGS,
                        label2id={v: k for k, v in TAGS.items()})
    model = BertForTokenClassification(config).eval()
    with torch.no_grad():         # a head that names things, so that every strategy groups
        model.classifier.bias.copy_(torch.tensor([0.0, 0.8, 0.6, 0.5, 0.4]))
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(str(MINILM)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("classifiers")
    return {"single": tiny_classifier(root / "single"),
            "multi": tiny_classifier(root / "multi", multi_label=True),
            "reranker": tiny_classifier(root / "reranker", labels={0: "LABEL_0"}),
            "ner": tiny_tagger(root / "ner"),
            "nli": tiny_classifier(root / "nli", labels=NLI)}


@pytest.fixture(scope="module")
def base(models, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("classify-server")
    config = {"cache_dir": str(tmp / "cache"), "models": [
        {"name": "cls-torch", "source": str(models["single"]), "backend": "torch",
         "dtype": "float32", "threads": 1},
        {"name": "cls-openvino", "source": str(models["single"]), "dtype": "float32",
         "threads": 1},
        {"name": "cls-multi", "source": str(models["multi"]), "backend": "torch",
         "dtype": "float32", "threads": 1},
        {"name": "reranker", "source": str(models["reranker"]), "backend": "torch",
         "dtype": "float32", "threads": 1},
        {"name": "ner", "source": str(models["ner"]), "backend": "torch", "dtype": "float32",
         "threads": 1},
        {"name": "ner-openvino", "source": str(models["ner"]), "dtype": "float32",
         "threads": 1},
        {"name": "nli", "source": str(models["nli"]), "backend": "torch", "dtype": "float32",
         "threads": 1},
    ]}
    proc, url, log = launch(config, tmp)
    yield url
    stop(proc, log)


def expected(folder, texts):
    from transformers import pipeline

    pipe = pipeline("text-classification", model=str(folder), top_k=None, device="cpu")
    return [{r["label"]: r["score"] for r in rows} for rows in pipe(texts)]


@pytest.mark.parametrize(("model", "kind"), [("cls-torch", "single"),
                                             ("cls-openvino", "single"),
                                             ("cls-multi", "multi")])
def test_scores_equal_transformers_pipeline(base, models, model, kind):
    got = httpx.post(f"{base}/v1/classify", timeout=60,
                     json={"model": model, "input": TEXTS}).json()
    assert got["object"] == "list" and got["model"] == model
    assert got["usage"]["prompt_tokens"] > len(TEXTS)
    want = expected(models[kind], TEXTS)
    tolerance = 1e-4 if model != "cls-openvino" else 2e-3
    for row, scores in zip(got["data"], want, strict=True):
        assert row["num_classes"] == 3
        by_label = dict(zip(LABELS.values(), row["probs"], strict=True))
        assert by_label == pytest.approx(scores, abs=tolerance)
        assert row["label"] == max(scores, key=scores.get)
    if kind == "single":
        assert all(sum(r["probs"]) == pytest.approx(1.0, abs=1e-5) for r in got["data"])


def test_one_text_alone_and_in_concurrent_mixed_batches_scores_the_same(base):
    alone = httpx.post(f"{base}/v1/classify", timeout=60,
                       json={"model": "cls-torch", "input": TEXTS[1]}).json()["data"][0]

    async def many():
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            return await asyncio.gather(*(client.post("/v1/classify", json={
                "model": "cls-torch", "input": [TEXTS[i % 4], TEXTS[1]]}) for i in range(12)))

    for response in asyncio.run(many()):
        assert response.json()["data"][1]["probs"] == pytest.approx(alone["probs"], abs=1e-5)


def test_a_model_that_does_not_classify_and_bad_inputs_are_400s(base):
    for body in ({"model": "cls-torch", "input": []}, {"model": "cls-torch", "input": [""]},
                 {"model": "cls-torch", "input": [["a", "b", "c"]]}):
        response = httpx.post(f"{base}/v1/classify", json=body, timeout=30)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["type"] == "invalid_request_error"
    too_long = httpx.post(f"{base}/v1/classify", timeout=30,
                          json={"model": "cls-torch", "input": "word " * 400})
    assert too_long.json()["error"]["code"] == "context_length_exceeded"
    cut = httpx.post(f"{base}/v1/classify", timeout=30,
                     json={"model": "cls-torch", "input": "word " * 400, "truncate": True})
    assert cut.status_code == 200
    assert httpx.get(f"{base}/v1/models/cls-torch").json()["tasks"] == ["text-classification"]


def test_a_pair_of_texts_scores_as_the_pipeline_scores_text_and_text_pair(base, models):
    from transformers import pipeline

    pair = ["A man is playing a guitar.", "Someone makes music."]
    got = httpx.post(f"{base}/v1/classify", timeout=60,
                     json={"model": "cls-torch", "input": [pair]}).json()["data"][0]
    pipe = pipeline("text-classification", model=str(models["single"]), top_k=None)
    want = {r["label"]: r["score"] for r in pipe({"text": pair[0], "text_pair": pair[1]})}
    assert dict(zip(LABELS.values(), got["probs"], strict=True)) == pytest.approx(want,
                                                                                  abs=1e-4)


QUERY = "Which film has the best actors?"


def cross_encoder_scores(folder, pairs):
    from sentence_transformers import CrossEncoder

    return [float(x) for x in CrossEncoder(str(folder), device="cpu").predict(pairs)]


def test_rerank_scores_and_order_equal_the_cross_encoders(base, models):
    want = cross_encoder_scores(models["reranker"], [[QUERY, t] for t in TEXTS])
    documents = [TEXTS[0], {"text": TEXTS[1]}, *TEXTS[2:]]
    got = httpx.post(f"{base}/v1/rerank", timeout=60, json={
        "model": "reranker", "query": QUERY, "documents": documents}).json()
    assert got["model"] == "reranker" and got["usage"]["prompt_tokens"] > 0
    order = sorted(range(len(TEXTS)), key=lambda i: -want[i])
    assert [r["index"] for r in got["results"]] == order
    for r in got["results"]:
        assert r["relevance_score"] == pytest.approx(want[r["index"]], abs=1e-4)
        assert r["document"] == {"text": TEXTS[r["index"]]}
    top = httpx.post(f"{base}/rerank", timeout=60, json={
        "model": "reranker", "query": QUERY, "documents": TEXTS, "top_n": 2,
        "return_documents": False}).json()
    assert [r["index"] for r in top["results"]] == order[:2]
    assert all(r["document"] is None for r in top["results"])


def test_score_pairs_one_to_many_and_zipped(base, models):
    want = cross_encoder_scores(models["reranker"], [[QUERY, t] for t in TEXTS])
    one = httpx.post(f"{base}/v1/score", timeout=60, json={
        "model": "reranker", "text_1": QUERY, "text_2": TEXTS}).json()
    assert [d["score"] for d in one["data"]] == pytest.approx(want, abs=1e-4)
    zipped = httpx.post(f"{base}/v1/score", timeout=60, json={
        "model": "reranker", "text_1": [QUERY] * 2, "text_2": TEXTS[:2]}).json()
    assert [d["score"] for d in zipped["data"]] == pytest.approx(want[:2], abs=1e-4)
    bad = httpx.post(f"{base}/v1/score", timeout=60, json={
        "model": "reranker", "text_1": [QUERY] * 2, "text_2": TEXTS})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "text_1"


def test_rerank_of_a_three_label_classifier_is_a_400(base):
    response = httpx.post(f"{base}/v1/rerank", timeout=60, json={
        "model": "cls-torch", "query": QUERY, "documents": TEXTS})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unsupported_task"
    tasks = httpx.get(f"{base}/v1/models/reranker").json()["tasks"]
    assert tasks == ["rerank", "text-classification"]


NER_TEXTS = ["Angela Merkel visited Washington and Paris in unbelievable weather.",
             "Jean-Baptiste lives in Düsseldorf."]


@pytest.mark.parametrize("model", ["ner", "ner-openvino"])
@pytest.mark.parametrize("strategy", ["none", "simple", "first", "average", "max"])
def test_entities_equal_the_token_classification_pipeline(base, models, strategy, model):
    from transformers import pipeline

    pipe = pipeline("token-classification", model=str(models["ner"]),
                    aggregation_strategy=strategy)
    want = [[{k: (float(v) if k == "score" else v) for k, v in e.items()} for e in rows]
            for rows in pipe(NER_TEXTS)]
    got = httpx.post(f"{base}/v1/infer/{model}", timeout=60, json={
        "inputs": NER_TEXTS, "parameters": {"aggregation_strategy": strategy}}).json()
    assert len(got) == len(want) and any(want)
    for got_rows, want_rows in zip(got, want, strict=True):
        assert [{k: v for k, v in e.items() if k != "score"} for e in got_rows] == \
            [{k: v for k, v in e.items() if k != "score"} for e in want_rows]
        assert [e["score"] for e in got_rows] == pytest.approx(
            [e["score"] for e in want_rows], abs=1e-4)
    single = httpx.post(f"{base}/v1/infer/{model}", timeout=60, json={
        "inputs": NER_TEXTS[1], "parameters": {"aggregation_strategy": strategy}}).json()
    assert [e["word"] for e in single] == [e["word"] for e in want[1]]
    card = httpx.get(f"{base}/v1/models/{model}", timeout=30).json()
    assert card["backend"] == ("torch" if model == "ner" else "openvino")


def test_infer_classifies_as_the_text_classification_pipeline(base, models):
    from transformers import pipeline

    pipe = pipeline("text-classification", model=str(models["single"]))
    for inputs, parameters in ((TEXTS[0], {}), (TEXTS, {}), (TEXTS[0], {"top_k": None}),
                               (TEXTS, {"top_k": 2})):
        want = pipe(inputs, **parameters)
        got = httpx.post(f"{base}/v1/infer/cls-torch", timeout=60,
                         json={"inputs": inputs, "parameters": parameters}).json()
        assert json_round(got) == json_round(want)


def json_round(value):
    if isinstance(value, list):
        return [json_round(v) for v in value]
    if isinstance(value, dict):
        return {k: round(float(v), 4) if k == "score" else v for k, v in value.items()}
    return value


def test_infer_refuses_what_it_does_not_serve(base):
    bad = httpx.post(f"{base}/v1/infer/ner", timeout=60, json={
        "inputs": "x", "parameters": {"aggregation_strategy": "loudest"}})
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "parameters.aggregation_strategy"
    assert httpx.post(f"{base}/v1/infer/nope", json={"inputs": "x"}).status_code == 404


def test_tei_predict_single_pair_and_batch_equal_the_pipeline(base, models):
    from transformers import pipeline

    classifier = pipeline("text-classification", model=str(models["single"]), top_k=None)

    def pipe(item):             # every label, best first, for one input
        return classifier([item])[0]

    pair = ["A man is playing a guitar.", "Someone makes music."]
    cases = [(TEXTS[0], pipe(TEXTS[0])),
             (pair, pipe({"text": pair[0], "text_pair": pair[1]})),
             ([[TEXTS[1]], pair], [pipe(TEXTS[1]), pipe({"text": pair[0],
                                                         "text_pair": pair[1]})])]
    for inputs, want in cases:
        got = httpx.post(f"{base}/predict", timeout=60,
                         json={"inputs": inputs, "model": "cls-torch"}).json()
        assert json_round(got) == json_round(want)
    raw = httpx.post(f"{base}/predict", timeout=60, headers={"X-Model": "cls-torch"},
                     json={"inputs": TEXTS[0], "raw_scores": True}).json()
    assert sum(p["score"] for p in raw) != pytest.approx(1.0)


def test_tei_rerank_equals_the_cross_encoder(base, models):
    want = cross_encoder_scores(models["reranker"], [[QUERY, t] for t in TEXTS])
    got = httpx.post(f"{base}/rerank", timeout=60, json={
        "query": QUERY, "texts": TEXTS, "return_text": True}).json()   # the one reranker
    assert [r["index"] for r in got] == sorted(range(len(TEXTS)), key=lambda i: -want[i])
    for r in got:
        assert r["score"] == pytest.approx(want[r["index"]], abs=1e-4)
        assert r["text"] == TEXTS[r["index"]]
    raw = httpx.post(f"{base}/rerank", timeout=60, json={
        "query": QUERY, "texts": TEXTS[:1], "raw_scores": True}).json()
    assert raw[0]["score"] == pytest.approx(float(np.log(want[0] / (1 - want[0]))), abs=1e-3)
    assert "text" not in raw[0]


@pytest.mark.parametrize("multi_label", [False, True])
def test_zero_shot_equals_the_zero_shot_pipeline(base, models, multi_label):
    from transformers import pipeline

    labels = ["cinema", "cooking", "politics"]
    pipe = pipeline("zero-shot-classification", model=str(models["nli"]))
    for inputs in (TEXTS[0], TEXTS[:3]):
        want = pipe(inputs, candidate_labels=labels, multi_label=multi_label,
                    hypothesis_template="This text is about {}.")
        got = httpx.post(f"{base}/v1/infer/nli", timeout=60, json={
            "inputs": inputs, "parameters": {
                "candidate_labels": labels, "multi_label": multi_label,
                "hypothesis_template": "This text is about {}."}}).json()
        for g, w in zip(got if isinstance(got, list) else [got],
                        want if isinstance(want, list) else [want], strict=True):
            assert g["sequence"] == w["sequence"] and g["labels"] == w["labels"]
            assert g["scores"] == pytest.approx(w["scores"], abs=1e-4)
    plain = httpx.post(f"{base}/v1/infer/nli", timeout=60, json={"inputs": TEXTS[0]}).json()
    assert isinstance(plain, list) and {"label", "score"} <= set(plain[0])   # classifies
    bad = httpx.post(f"{base}/v1/infer/cls-torch", timeout=60, json={
        "inputs": "x", "parameters": {"candidate_labels": labels}})
    assert bad.status_code == 400           # not an NLI model: never silently ignored
    assert bad.json()["error"]["param"] == "parameters.candidate_labels"
    tasks = httpx.get(f"{base}/v1/models/nli").json()["tasks"]
    assert tasks == ["text-classification", "zero-shot-classification"]
