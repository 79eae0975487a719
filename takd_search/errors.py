"""The one exception type for mistakes a user can fix: bad flags, files, data, spaces.

Its message is one line naming the problem and the fix; the CLI prints it and exits 2.
Module-specific errors (DataError, ModelError, PathError, SpecError) derive from it.
"""


class UserError(ValueError):
    """A mistake in the user's input or environment, with the fix in its message."""
