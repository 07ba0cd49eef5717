"""The JSON-schema validator of suites' ``json-schema`` assertion: ``playground/json_schema.py``.

It moved below the evaluation layer so that the check of structured output (``constraint.py``)
uses the same validator; this name stays for the modules that import it from here.
"""

from __future__ import annotations

from playground.json_schema import IGNORED, KEYWORDS, TYPES, check_schema, same, type_of, validate

__all__ = ["IGNORED", "KEYWORDS", "TYPES", "check_schema", "same", "type_of", "validate"]
