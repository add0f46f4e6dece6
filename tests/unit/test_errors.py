"""The error tree (errors.py): statuses, OpenAI types, codes, headers and the envelope."""

from __future__ import annotations

import pytest

from hfserve import errors as e

TABLE = [
    (e.HFServeError, 500, "server_error", None),
    (e.InvalidRequest, 400, "invalid_request_error", "invalid_request"),
    (e.ContextLengthExceeded, 400, "invalid_request_error", "context_length_exceeded"),
    (e.UnsafeModel, 400, "invalid_request_error", "unsafe_model"),
    (e.MalformedModel, 400, "invalid_request_error", "malformed_model_file"),
    (e.AuthenticationError, 401, "authentication_error", "invalid_api_key"),
    (e.PermissionDenied, 403, "permission_error", "insufficient_permissions"),
    (e.NotFound, 404, "not_found_error", "not_found"),
    (e.RateLimited, 429, "rate_limit_error", "rate_limit_exceeded"),
    (e.LimitsUnavailable, 503, "service_unavailable", "rate_limit_store_unavailable"),
    (e.ModelNotFound, 404, "invalid_request_error", "model_not_found"),
    (e.UnsupportedTask, 400, "invalid_request_error", "unsupported_task"),
    (e.PayloadTooLarge, 413, "invalid_request_error", "payload_too_large"),
    (e.Overloaded, 429, "rate_limit_error", "queue_full"),
    (e.ModelLoading, 503, "service_unavailable", "model_loading"),
    (e.ModelUnavailable, 503, "service_unavailable", "model_unavailable"),
    (e.DeviceOutOfMemory, 503, "service_unavailable", "device_out_of_memory"),
    (e.ServerShuttingDown, 503, "service_unavailable", "server_shutting_down"),
    (e.DeadlineExceeded, 504, "timeout_error", "deadline_exceeded"),
    (e.Cancelled, 499, "cancelled", "client_closed_request"),
    (e.ModelError, 500, "server_error", "model_error"),
    (e.InvalidPluginOutput, 502, "server_error", "invalid_plugin_output"),
    (e.ModelExists, 409, "invalid_request_error", "model_exists"),
    (e.Forbidden, 403, "permission_error", "forbidden"),
    (e.MemoryExhausted, 503, "service_unavailable", "model_memory_exhausted"),
    (e.CircuitOpen, 503, "service_unavailable", "model_circuit_open"),
    (e.UnservableModels, 500, "server_error", "unservable_models"),
]


@pytest.mark.parametrize(("cls", "status", "type_", "code"), TABLE,
                         ids=[row[0].__name__ for row in TABLE])
def test_status_type_and_code(cls, status: int, type_: str, code: str | None) -> None:
    err = cls("something went wrong", param="input")
    assert (err.status, err.type, err.code) == (status, type_, code)
    assert err.param == "input"
    assert err.message == "something went wrong"
    assert str(err) == "something went wrong"
    assert isinstance(err, e.HFServeError)


def test_every_error_class_is_covered() -> None:
    classes = {obj for obj in vars(e).values()
               if isinstance(obj, type) and issubclass(obj, e.HFServeError)}
    assert classes == {row[0] for row in TABLE}


def test_context_length_is_an_invalid_request() -> None:
    assert issubclass(e.ContextLengthExceeded, e.InvalidRequest)


def test_code_can_be_overridden_per_instance() -> None:
    err = e.InvalidRequest("bad", code="bad_stop")
    assert err.code == "bad_stop"
    assert e.InvalidRequest("bad").code == "invalid_request"


@pytest.mark.parametrize(("cls", "default"), [(e.Overloaded, "1"), (e.ModelLoading, "5")])
def test_retry_after_header(cls, default: str) -> None:
    assert cls("busy").headers == {"Retry-After": default}
    assert cls("busy", retry_after=7.4).headers["Retry-After"] == "7"
    assert cls("busy", retry_after=0.1).headers["Retry-After"] == "1"   # never below 1


def test_other_errors_carry_no_headers() -> None:
    assert e.ModelNotFound("x").headers == {}
    assert e.DeadlineExceeded("x").headers == {}


def test_headers_are_per_instance() -> None:
    first = e.Overloaded("busy", retry_after=3)
    second = e.Overloaded("busy")
    assert first.headers["Retry-After"] == "3"
    assert second.headers["Retry-After"] == "1"


def test_to_dict_is_the_openai_envelope() -> None:
    err = e.ContextLengthExceeded("too long", param="max_tokens")
    assert err.to_dict() == {"error": {"message": "too long",
                                       "type": "invalid_request_error",
                                       "param": "max_tokens",
                                       "code": "context_length_exceeded"}}


def test_to_dict_without_param() -> None:
    body = e.ModelError("model failed").to_dict()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["param"] is None


@pytest.mark.parametrize("error", [
    e.Overloaded("queue full", retry_after=3.0, param="model"),
    e.ContextLengthExceeded("too long", param="messages"),
    e.DeviceOutOfMemory("moved", code="custom_code"),
], ids=lambda err: type(err).__name__)
def test_errors_survive_pickling_with_every_attribute(error) -> None:
    import pickle

    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert copy.to_dict() == error.to_dict()
    assert copy.headers == error.headers and copy.status == error.status
    assert str(copy) == str(error)


PYBIND = ("generate(): incompatible function arguments. The following argument types are "
          "supported:\n    1. (self: openvino_genai.ContinuousBatchingPipeline, seed: int) -> "
          "None\n\nInvoked with: <openvino_genai.ContinuousBatchingPipeline object at "
          "0x7f3a2c1b9df0>, -1")


@pytest.mark.parametrize("message", [
    PYBIND,
    "Traceback (most recent call last):\n  File \"/usr/lib/python3.11/x.py\", line 3",
    "failed to open /opt/build/openvino/src/plugins/intel_cpu/src/node.cpp:123",
    "object at 0xdeadbeef12 is gone",
    "bad model 'x\ud800'",
    "x" * 5000,
])
def test_error_bodies_carry_no_paths_addresses_tracebacks_or_bad_text(message: str) -> None:
    import json
    import re

    body = e.ModelError(message, param="in\udfffput").to_dict()["error"]
    text = json.dumps(body, ensure_ascii=False)
    text.encode("utf-8")                       # encodable: no lone surrogate left
    assert "\n" not in body["message"] and len(body["message"]) <= e.MAX_MESSAGE
    assert not re.search(r"0x[0-9a-f]{4,}", text)
    assert "/usr/lib" not in text and "/opt/build" not in text
    assert "Invoked with" not in text and "File " not in text


def test_public_keeps_an_ordinary_message() -> None:
    assert e.public("model 'org/name' does not exist") == "model 'org/name' does not exist"
