"""One error type for everything a user can get wrong, so every command can print one clear line and exit 1."""


class UserError(Exception):
    """Bad input from the user: the message names the file (and line/field) and what is wrong."""
