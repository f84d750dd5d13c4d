"""Request body parsers (DRF's setting names this module; it must not import DRF's views)."""

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    """DRF's, but a body nested too deeply for Python's decoder (about 1,000 levels: a few kB) is
    the caller's 400 like any other unparsable body, not a 500 from a RecursionError."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply.")
