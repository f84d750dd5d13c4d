"""The schema generator's settings-level class (DEFAULT_SCHEMA_CLASS). Kept apart from
jptranscribe.schema: drf-spectacular's generator imports DRF's views, which load the
authentication classes, which must not be needed to build an error body."""

from drf_spectacular import openapi

from jptranscribe.fields import StrictCharField


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's, except that a StrictCharField's schema is exactly what it declares.

    drf-spectacular adds `oneOf: [<the field>, {"maxLength": 0}]` to a blank-allowed string with
    a pattern; a StrictCharField's pattern already says whether "" is taken (so "" would match
    both, which oneOf forbids)."""

    def _insert_field_validators(self, field, schema):
        super()._insert_field_validators(field, schema)
        if isinstance(field, StrictCharField) and "oneOf" in schema:
            declared, _blank = schema.pop("oneOf")
            schema.update(declared)
