"""One exception family for every input problem wideep reports to a person.

The CLI prints ``str(error)`` on one line and exits with code 2.
"""

from __future__ import annotations


class WideEPError(Exception):
    """Bad input: names the source (file or option), the field and what is wrong.

    >>> str(WideEPError("too small", source="a.toml", field="mem_GB"))
    'a.toml: mem_GB: too small'
    """

    def __init__(self, problem: str, source: str | None = None, field: str | None = None):
        self.problem, self.source, self.field = problem, source, field
        super().__init__(": ".join(p for p in (source, field, problem) if p))

    def __reduce__(self):  # pickled whole (problem, source, field), e.g. from a search worker process
        return type(self), (self.problem, self.source, self.field)


class CatalogError(WideEPError):
    """A catalog or user data file is malformed or fails validation."""


class NotFoundError(WideEPError):
    """A name that matches no catalog entry (the message suggests the closest ids)."""


class InputError(WideEPError):
    """A command-line option or a statistics file is out of range or inconsistent."""
