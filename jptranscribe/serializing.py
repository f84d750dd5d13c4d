"""Requests read and answers written through serializers, one shared instance per class.

A new DRF serializer deep-copies every declared field, which cost more than a claim's SQL;
reading and rendering keep no state in the serializer, so all threads share one."""

import functools
from collections.abc import Collection

from rest_framework import serializers


@functools.cache
def _shared(serializer_class):
    return serializer_class()


def validated(serializer_class, data) -> dict:
    """A request body checked by an input serializer; errors raise as is_valid(raise_exception=True) does."""
    refuse_repeated_fields(data)
    return _shared(serializer_class).run_validation(data)


def refuse_repeated_fields(data, *, lists: Collection[str] = ()) -> None:
    """A form field sent twice (two `file` parts, say) is refused rather than one of them taken
    silently. Fields named `name[]` are lists by design (OpenAI's `timestamp_granularities[]`), and
    so are those named in `lists`."""
    getlist = getattr(data, "getlist", None)  # a form (QueryDict); a JSON object cannot repeat a name
    if getlist is None:
        return
    for name in data:
        if not name.endswith("[]") and name not in lists and len(getlist(name)) > 1:
            raise serializers.ValidationError({name: [f"'{name}' was sent more than once; send it once."]})


def rendered(serializer_class, instance) -> dict:
    """An answer rendered by its output serializer: the same class documents it in openapi.yaml."""
    return _shared(serializer_class).to_representation(instance)


class NoFields(serializers.Serializer):
    """The body of a POST that takes no fields (`POST /v1/keys`): none, or a JSON object, whose
    unknown fields are ignored as everywhere; a body that is not one is refused like any other."""


def read_no_fields(request) -> None:
    """Parse the body, so a malformed one is 400 and a wrong Content-Type 415, not ignored."""
    validated(NoFields, request.data)
