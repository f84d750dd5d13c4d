"""Requests read and answers written through serializers, one shared instance per class.

A new DRF serializer deep-copies every declared field, which cost more than a claim's SQL;
reading and rendering keep no state in the serializer, so all threads share one."""

import functools


@functools.cache
def _shared(serializer_class):
    return serializer_class()


def validated(serializer_class, data) -> dict:
    """A request body checked by an input serializer; errors raise as is_valid(raise_exception=True) does."""
    return _shared(serializer_class).run_validation(data)


def rendered(serializer_class, instance) -> dict:
    """An answer rendered by its output serializer: the same class documents it in openapi.yaml."""
    return _shared(serializer_class).to_representation(instance)
