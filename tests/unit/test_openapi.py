"""The OpenAPI document tells the truth about every answer (the fuzz test holds the server
to it; these tests hold the document to what the server is known to answer)."""

from __future__ import annotations

from typing import Any

import pytest

from runplane import Runplane
from runplane.server.app import create_app
from runplane.server.wire import UNSUPPORTED_RUN_FIELDS


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    app = Runplane("sqlite:///:memory:", worker=False)

    @app.workflow("echo")
    async def echo(ctx: Any, input: Any) -> Any:
        return input

    return create_app(app).openapi()


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, ops in document["paths"].items()
            for method, op in ops.items()]


def _schema(document: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    schema = answer["content"]["application/json"]["schema"]
    name = schema["$ref"].rsplit("/", 1)[-1]
    return document["components"]["schemas"][name]


def test_every_error_answer_is_documented_with_a_string_detail(
        document: dict[str, Any]) -> None:
    for path, method, op in _operations(document):
        if path in ("/ok", "/info"):
            continue
        answers = op["responses"]
        where = f"{method.upper()} {path}"
        assert {"400", "403", "422", "503"} <= answers.keys(), where
        assert "401" in answers or path == "/ok", where
        if method != "get":
            assert "415" in answers, where
        if "{" in path:
            assert "404" in answers, where
        if "requestBody" in op:
            assert {"400", "413"} <= answers.keys(), where
        for code, answer in answers.items():
            if code.startswith(("4", "5")):
                detail = _schema(document, answer)["properties"]["detail"]
                assert detail["type"] == "string", (where, code)
        assert "Retry-After" in answers["503"]["headers"], where


def test_success_answers_have_real_schemas(document: dict[str, Any]) -> None:
    for path, method, op in _operations(document):
        ok = {code: a for code, a in op["responses"].items() if code.startswith("2")}
        assert ok, (method, path)
        for code, answer in ok.items():
            if code == "204":
                continue
            content = answer["content"]
            assert content, (method, path, code)
            for media in content.values():
                assert media["schema"] not in ({}, None) or "wait" in path or "join" in path, (
                    method, path, code)


def test_cancel_documents_202_and_200_with_wait(document: dict[str, Any]) -> None:
    answers = document["paths"]["/runs/{run_id}/cancel"]["post"]["responses"]
    assert {"200", "202", "404", "409"} <= answers.keys()


def test_refused_run_fields_are_not_offered(document: dict[str, Any]) -> None:
    offered = document["components"]["schemas"]["RunCreate"]["properties"]
    assert not set(UNSUPPORTED_RUN_FIELDS) & offered.keys()
    assert "values" not in document["components"]["schemas"]["ThreadSearch"]["properties"]


def test_a_wrong_method_answers_405_naming_every_method_of_the_path() -> None:
    from fastapi.testclient import TestClient

    app = create_app(Runplane("sqlite:///:memory:", worker=False))
    client = TestClient(app, base_url="http://localhost")
    answer = client.put("/threads/some-thread")  # GET, PATCH, DELETE are 3 routes
    assert answer.status_code == 405
    assert answer.json()["detail"]
    assert set(answer.headers["allow"].split(", ")) == {"DELETE", "GET", "PATCH"}
