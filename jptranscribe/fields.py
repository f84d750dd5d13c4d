"""Input fields that take exactly what the OpenAPI description says.

DRF's fields coerce: CharField turns a JSON number into a string ("version": 0 becomes "0"),
FloatField takes "1.5" and true, BooleanField takes "yes" and 1. For JSON bodies these take
the JSON type the schema names, and nothing else. (Form and multipart values are all strings:
those bodies keep DRF's own fields.)
"""

import datetime

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import build_basic_type
from rest_framework import serializers

# DRF's CharField refuses NUL characters; the schema says so.
NO_NUL = r"^[^\u0000]*$"
# ...and, for a text that must not be blank once stripped, at least one other character.
NOT_BLANK = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"


class _JsonTyped(serializers.Field):
    """Refuses a value of another JSON type instead of coercing it (a bool is not a number here)."""

    json_types: tuple[type, ...] = (str,)

    def to_internal_value(self, data):
        if not isinstance(data, self.json_types) or (isinstance(data, bool) and bool not in self.json_types):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictCharField(_JsonTyped, serializers.CharField):
    """A string, and only a string.

    `schema` adds what the view checks beyond this field (an enum the view refuses with its
    own message, a length it refuses with 413, the pattern of an id only a lookup can refuse)
    to the OpenAPI description, so the description is exact while the refusal stays the view's."""

    def __init__(self, *, schema=None, **kwargs):
        self.schema = dict(schema or {})
        super().__init__(**kwargs)


class StrictRegexField(_JsonTyped, serializers.RegexField):
    """A string matching `regex` (documented as the schema's `pattern`; `\\Z` becomes `$`)."""


class StrictFloatField(_JsonTyped, serializers.FloatField):
    """A JSON number: not a string of digits, not a boolean."""

    json_types = (int, float)


class StrictIntegerField(_JsonTyped, serializers.IntegerField):
    """A JSON integer: not a string of digits, not a boolean, not 1.5."""

    json_types = (int,)


class StrictBooleanField(_JsonTyped, serializers.BooleanField):
    """A JSON true or false: not "yes", not 1."""

    json_types = (bool,)


class StrictCharFieldSchema(OpenApiSerializerFieldExtension):
    target_class = StrictCharField

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        schema.update(self.target.schema)
        if "pattern" not in schema and "enum" not in schema:
            schema["pattern"] = NO_NUL
        return schema


class AnswerValue(serializers.Field):
    """A value an answer carries whatever it renders: a constant, or (a callable) a server
    setting read at rendering time. `of_type` is its type in the description."""

    def __init__(self, value, *, of_type: type, **kwargs):
        self.value, self.of_type = value, of_type
        super().__init__(read_only=True, source="*", **kwargs)

    def to_representation(self, instance):
        return self.value() if callable(self.value) else self.value


class AnswerValueSchema(OpenApiSerializerFieldExtension):
    target_class = AnswerValue

    def map_serializer_field(self, auto_schema, direction):
        return build_basic_type(self.target.of_type)


class UtcDateTimeField(serializers.DateTimeField):
    """An answer's time, ISO 8601 in UTC ("…Z"). Naming the zone spares DRF's lookup of the
    current one on every call."""

    def __init__(self, **kwargs):
        kwargs.setdefault("default_timezone", datetime.UTC)
        super().__init__(**kwargs)
