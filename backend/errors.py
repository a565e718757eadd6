"""The one error type users see.

Every problem caused by input (a preset, a flag, a file, a run id) is raised as a
`UserError` whose message already names *what* and *where*; the command line prints
it on one line and exits with status 2, so nothing else needs to format errors.
"""


class UserError(Exception):
    """Bad input: printed as one line, exit status 2, nothing half-written."""

    exit_code = 2


class RunLocked(UserError):
    """Another runner holds this run directory's lock."""

    exit_code = 3
