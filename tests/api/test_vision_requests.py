"""The vision routes' request forms (/v1/detect, /v1/segment, image embeddings, zero-shot
image classification) in-process: bad fields, and tasks a model does not serve, are 400s in
OpenAI's envelope naming the field, and the server goes on serving."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from test_app import assert_still_serving, error_of

if TYPE_CHECKING:
    from conftest import Server

IMAGE = "data:image/png;base64,iVBORw0KGgo="

BAD: dict[str, tuple[str, dict[str, Any], int, str | None, str | None]] = {
    "detect-threshold": ("/v1/detect", {"model": "emb", "input": IMAGE, "threshold": 1.5},
                         400, "threshold", None),
    "detect-no-images": ("/v1/detect", {"model": "emb", "input": []}, 400, "input", None),
    "detect-empty-image": ("/v1/detect", {"model": "emb", "input": ""}, 400, "input", None),
    "detect-unknown-field": ("/v1/detect", {"model": "emb", "input": IMAGE, "top_k": 3},
                             400, "top_k", None),
    "detect-unknown-model": ("/v1/detect", {"model": "nope", "input": IMAGE}, 404, "model",
                             "model_not_found"),
    "detect-text-model": ("/v1/detect", {"model": "emb", "input": IMAGE}, 400, "model",
                          "unsupported_task"),
    "segment-subtask": ("/v1/segment", {"model": "emb", "input": IMAGE, "subtask": "depth"},
                        400, "subtask", None),
    "segment-mask-threshold": ("/v1/segment", {"model": "emb", "input": IMAGE,
                                               "mask_threshold": -0.1},
                               400, "mask_threshold", None),
    "segment-text-model": ("/v1/segment", {"model": "emb", "input": [IMAGE]}, 400, "model",
                           "unsupported_task"),
    "embed-modality": ("/v1/embeddings", {"model": "emb", "input": "hi", "modality": "audio"},
                       400, "modality", None),
    "embed-image-on-text-model": ("/v1/embeddings", {"model": "emb", "input": IMAGE,
                                                     "modality": "image"},
                                  400, "modality", "unsupported_task"),
    "classify-no-labels": ("/v1/classify", {"model": "emb", "input": IMAGE,
                                            "candidate_labels": []},
                           400, "candidate_labels", None),
    "classify-labels-on-text-model": ("/v1/classify", {"model": "emb", "input": "hi",
                                                       "candidate_labels": ["a", "b"]},
                                      400, "candidate_labels", None),
    "infer-labels-on-text-model": ("/v1/infer/emb", {"inputs": IMAGE, "parameters": {
        "candidate_labels": ["a", "b"]}}, 400, "parameters.candidate_labels", None),
}


@pytest.mark.parametrize("case", sorted(BAD))
async def test_bad_vision_request_is_a_400_naming_the_field(server: Server, case: str
                                                            ) -> None:
    path, body, status, param, code = BAD[case]
    response = await server.client.post(path, json=body)
    assert response.status_code == status, response.text
    error = error_of(response)
    assert error["param"] == param
    if code is not None:
        assert error["code"] == code
    await assert_still_serving(server)


async def test_openapi_documents_the_vision_routes(server: Server) -> None:
    spec = (await server.client.get("/openapi.json")).json()
    for path, schema in (("/v1/detect", "DetectResponse"), ("/v1/segment", "SegmentResponse")):
        ok = spec["paths"][path]["post"]["responses"]["200"]["content"]["application/json"]
        assert ok["schema"]["$ref"].endswith(schema)
    schemas = spec["components"]["schemas"]
    assert set(schemas["Box"]["properties"]) == {"xmin", "ymin", "xmax", "ymax"}
    assert schemas["EmbeddingRequest"]["properties"]["modality"]["default"] == "text"
