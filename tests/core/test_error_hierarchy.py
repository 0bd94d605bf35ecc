"""Every exception the library raises on purpose is a CascadeError subclass (checked over the source)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [*(ROOT / "shared" / "cascade_core").rglob("*.py"), *(ROOT / "langchain_cascade").rglob("*.py"),
           *(ROOT / "llamaindex_cascade").rglob("*.py")]
_BUILTIN_RAISE = re.compile(r"raise (ValueError|TypeError|RuntimeError|KeyError|AssertionError|Exception)\(")
# The one builtin raise that is a protocol, not an error of ours: json.dumps(default=) must raise TypeError.
ALLOWED = {("evaluation/report.py", "TypeError")}


def test_no_builtin_exception_is_raised_directly() -> None:
    found = []
    for path in SOURCES:
        for match in _BUILTIN_RAISE.finditer(path.read_text()):
            rel = path.relative_to(ROOT).as_posix().split("cascade_core/", 1)[-1]
            if (rel, match.group(1)) not in ALLOWED:
                found.append(f"{rel}: raise {match.group(1)}")
    assert found == []


def test_errors_say_whose_fault_it_is_and_stay_catchable_as_builtins() -> None:
    from cascade_core import errors

    assert issubclass(errors.ConfigurationError, ValueError) and issubclass(errors.InvalidRequestError, ValueError)
    assert issubclass(errors.BackendError, RuntimeError) and issubclass(errors.MissingDependencyError, ImportError)
    for name in ("ConfigurationError", "InvalidRequestError", "BackendError", "SignalError", "RuleFileError",
                 "DataFormatError", "MissingDependencyError", "ModelNotAvailableError"):
        assert issubclass(getattr(errors, name), errors.CascadeError)
