"""The one error type of the deploy path: each fault becomes one clear line and a non-zero exit."""

from neoncc.errors import UserError


class DeployError(UserError):
    """A fault on the way to the board or on it; the message names the board, host or file concerned."""
