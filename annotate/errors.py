"""The toolkit's exceptions. Library code raises these; only the CLI turns them into exit codes.

Each message says what went wrong and where (file, article id, task id, span), in one line.
"""

from __future__ import annotations

import re


class AnnotateError(Exception):
    """Base class: the CLI prints ``Error: <message>`` and exits 1."""


class InputError(AnnotateError):
    """An input file cannot be read as articles or gold."""


class SchemaError(AnnotateError):
    """The label schema is missing, malformed, or does not fit the data."""


class GoldError(AnnotateError):
    """A gold set fails validation."""

    def __init__(self, message: str, problems: list | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])


class SettingsError(AnnotateError):
    """Project settings in pyproject.toml are malformed."""


# --- Label Studio (annotate/studio/, annotate/lsformat.py) ---


class StudioError(AnnotateError):
    """Talking to Label Studio failed. Messages name the server URL, never the API key."""


class StudioUnreachable(StudioError):
    """Nothing answers at the Label Studio URL, the connection broke, or the server failed (HTTP 5xx)."""


class StudioAuthError(StudioError):
    """The API key is missing, refused, or kept in a file others can read."""


class StudioProjectError(StudioError):
    """The project is missing, or a change to it would lose annotations."""


class StudioServerError(StudioError):
    """The local Label Studio server cannot be started, found or stopped."""


class PortBusyError(StudioServerError):
    """The port for the local server is taken (Label Studio itself would silently move to port+1)."""


class StudioDatabaseError(StudioServerError):
    """The local server's database (the project's PostgreSQL, or one given by URL) cannot be chosen or started."""


class PullError(StudioError):
    """Annotations in Label Studio fail validation; nothing was written to gold."""

    def __init__(self, message: str, problems: list | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])


class AgreementError(AnnotateError):
    """Pulled annotations cannot be compared or merged: a missing or changed article, a bad span, a bad setting."""


class PublishError(AnnotateError):
    """The dataset cannot be published: the output folder, the options or the data do not allow it."""


class HubError(AnnotateError):
    """Uploading to the Hugging Face Hub failed: no token, no network, or the Hub refused."""


class ConversionError(AnnotateError):
    """Gold cannot be turned into spaCy Docs as asked (e.g. a span off token boundaries under --strict)."""


class EvaluationError(AnnotateError):
    """Gold and predictions cannot be compared: different articles, texts, or unknown labels."""


class TrainingError(AnnotateError):
    """A pipeline cannot be trained, loaded or applied: bad config, too little gold, missing model."""


class PlanError(AnnotateError):
    """A plan cannot be made: no learning curve to fit, a target or label it cannot answer for, no pace."""


class TargetError(AnnotateError):
    """A command will not write here: the target is not absent and not something it wrote itself."""


def redact_url(url: str) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@``, for every message that shows a URL."""
    scheme, separator, rest = str(url).partition("://")
    if not separator:
        scheme, rest = "", scheme
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rsplit("@", 1)[1]
    return f"{scheme}{separator}{authority}{slash}{path}"


_USER_INFO = re.compile(r"(?<=://)[^/\s@'\"]*@")


def redact_urls(text: str) -> str:
    """``text`` with the ``user:password@`` of every URL in it shown as ``***@``: what every printed line passes."""
    return _USER_INFO.sub("***@", str(text))
