"""The errors of the Ray front-end: a bad input file, an output directory that does not fit, a cluster too small.

A missing extra is minidistil.errors.MissingExtraError (minidistil/extras.py).
"""

from ..errors import MinidistilError

class InputFileError(MinidistilError, ValueError):
    """A row of the input file cannot be embedded; the message names the file and the line or row."""


class ShardError(MinidistilError, ValueError):
    """The output directory does not hold what this job expects (another job's output, a part with the wrong rows)."""


class ClusterTooSmallError(MinidistilError, ValueError):
    """--workers actors of the CPUs asked for do not fit the Ray cluster; the message says what it has."""
