"""The one exception type for mistakes a user can fix: bad flags, files, data, spaces.

Its message is one line naming the problem and the fix; the CLI prints it and exits 2.
Module-specific errors (DataError, ModelError, PathError, SpecError) derive from it.
"""


class UserError(ValueError):
    """A mistake in the user's input or environment, with the fix in its message."""


def first_line(e: BaseException | str, limit: int = 200) -> str:
    """The first line of an error's message (at most `limit` characters), or the error's
    type name when it has no message: what a one-line report quotes of a library's error."""
    text = str(e).strip()
    if not text:
        return type(e).__name__ if isinstance(e, BaseException) else ""
    return text.splitlines()[0][:limit]
