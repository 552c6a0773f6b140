"""Errors a user can act on. Each carries a short stable `code` and a message that says what to do."""

from __future__ import annotations


class VkppError(Exception):
    """Base for every error vkpp reports to a user without a traceback."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code

    @property
    def message(self) -> str:
        return str(self)


class BadDocumentError(VkppError):
    """A file that cannot be ingested: codes empty_file, not_pdf, encrypted, truncated, corrupt,
    too_large, needs_ocr (no text layer and no OCR available), no_text (nothing readable even after OCR)."""

    code = "bad_document"


class ConfigurationError(VkppError):
    code = "configuration"


class PermissionDenied(VkppError):
    code = "permission_denied"


class MissingDependency(VkppError):
    """An optional heavy part (OCR, BERTopic, the embedding model) is not installed or not loadable."""

    code = "missing_dependency"
