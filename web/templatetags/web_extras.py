import re

from django import template
from django.utils.html import conditional_escape
from django.utils.safestring import mark_safe

register = template.Library()


@register.filter
def inline_code(text):
    """`backticks` in the shared error and endpoint texts become <code>, the rest is escaped."""
    parts = re.split(r"`([^`]+)`", str(text))
    return mark_safe(
        "".join(
            f"<code>{conditional_escape(part)}</code>" if i % 2 else conditional_escape(part)
            for i, part in enumerate(parts)
        )
    )
