"""User-facing errors. Every entry point turns these into one readable line."""

from __future__ import annotations

__all__ = ["EXIT_FAILURE", "EXIT_USAGE", "HairsegError", "ImageDecodeError"]

EXIT_FAILURE = 1
EXIT_USAGE = 2


class HairsegError(Exception):
    """An error whose message is meant for the person who ran the command.

    ``exit_code`` lets a command signal a distinct outcome to schedulers (for example a
    drift check); the message names the offending value and what would be accepted.
    """

    def __init__(self, message: str, *, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class ImageDecodeError(HairsegError):
    """Bytes that are not a decodable image, or an image outside the accepted limits."""
