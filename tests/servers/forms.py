"""Reading back a multipart/form-data request body, as a MIME parser does."""

from __future__ import annotations

import email.parser
import email.policy
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from email.message import EmailMessage

    from .scripted import ReceivedRequest

__all__ = ["described", "form_parts"]


def form_parts(request: ReceivedRequest) -> list[EmailMessage]:
    """The parts of a multipart/form-data request, as received; the body
    must parse without defects."""
    content_type = request.header("content-type")
    assert content_type is not None
    assert content_type.startswith(b"multipart/form-data; boundary=")
    raw = b"Content-Type: " + content_type + b"\r\n\r\n" + request.body
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    assert message.is_multipart()
    assert not message.defects
    return list(message.iter_parts())  # type: ignore[arg-type]


def described(part: EmailMessage) -> tuple[str | None, str | None, str | None, bytes]:
    """(name, filename, Content-Type or None, content) of one part."""
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    content_type = part["content-type"]
    return (
        part.get_param("name", header="content-disposition"),  # type: ignore[return-value]
        part.get_filename(),
        None if content_type is None else str(content_type),
        payload,
    )
