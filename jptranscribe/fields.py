"""Input fields that take exactly what the OpenAPI description says.

DRF's fields coerce: CharField turns a JSON number into a string ("version": 0 becomes "0"),
FloatField takes "1.5" and true, BooleanField takes "yes" and 1. For JSON bodies these take
the JSON type the schema names, and nothing else. (Form and multipart values are all strings:
those bodies keep DRF's own fields.)
"""
import datetime

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from rest_framework import serializers

# DRF's CharField refuses NUL characters; the schema says so.
NO_NUL = r"^[^\u0000]*$"
# ...and, for a text that must not be blank once stripped, at least one other character.
NOT_BLANK = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"


class StrictCharField(serializers.CharField):
    """A string, and only a string.

    `schema` adds what the view checks beyond this field (an enum the view refuses with its
    own message, a length it refuses with 413, the pattern of an id only a lookup can refuse)
    to the OpenAPI description, so the description is exact while the refusal stays the view's."""

    def __init__(self, *, schema=None, **kwargs):
        self.schema = dict(schema or {})
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictRegexField(serializers.RegexField):
    """A string matching `regex` (documented as the schema's `pattern`; `\\Z` becomes `$`)."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    """A JSON number: not a string of digits, not a boolean."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """A JSON true or false: not "yes", not 1."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class StrictCharFieldSchema(OpenApiSerializerFieldExtension):
    target_class = StrictCharField

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        schema.update(self.target.schema)
        if "pattern" not in schema and "enum" not in schema:
            schema["pattern"] = NO_NUL
        return schema


class UtcDateTimeField(serializers.DateTimeField):
    """An answer's time, ISO 8601 in UTC ("…Z"). Naming the zone spares DRF's lookup of the
    current one on every call."""

    def __init__(self, **kwargs):
        kwargs.setdefault("default_timezone", datetime.timezone.utc)
        super().__init__(**kwargs)
