"""Error names and validation messages."""

from __future__ import annotations

import pytest

from sipscribe.api.errors import ApiError, describe_validation_errors, error_body, error_name


@pytest.mark.parametrize(
    ("status", "name"),
    [
        (400, "BadRequestError"),
        (401, "UnauthorizedError"),
        (403, "ForbiddenError"),
        (404, "NotFoundError"),
        (405, "MethodNotAllowedError"),
        (409, "ConflictError"),
        (413, "PayloadTooLargeError"),
        (415, "UnsupportedMediaTypeError"),
        (429, "TooManyRequestsError"),
        (500, "InternalServerError"),
        (503, "ServiceUnavailableError"),
        (418, "ClientError"),
        (599, "ServerError"),
    ],
)
def test_error_names(status: int, name: str) -> None:
    assert error_name(status) == name


def test_api_error_carries_its_parts() -> None:
    error = ApiError(429, "slow down", headers={"Retry-After": "3"})
    assert (error.status_code, error.name, error.message, error.headers) == (
        429,
        "TooManyRequestsError",
        "slow down",
        {"Retry-After": "3"},
    )
    assert ApiError(400, "x", name="CursorError").name == "CursorError"


def test_error_body_shape() -> None:
    assert error_body(404, "No call x", request_id="r1") == {
        "error": {
            "statusCode": 404,
            "name": "NotFoundError",
            "message": "No call x",
            "requestId": "r1",
        }
    }


def test_validation_messages_name_each_field() -> None:
    errors = [
        {"loc": ("query", "limit"), "msg": "Input should be less than or equal to 100"},
        {"loc": ("body", "base_instructions"), "msg": "Input should be a valid string"},
        {"loc": (), "msg": "Field required"},
    ]
    assert describe_validation_errors(errors) == (
        "query.limit: Input should be less than or equal to 100; "
        "body.base_instructions: Input should be a valid string; Field required"
    )
    assert describe_validation_errors([]) == "request is not valid"
