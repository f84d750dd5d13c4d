"""How the OpenAPI description names the API key (drf-spectacular; loaded in AccountsConfig.ready)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerKeyScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.auth.BearerKeyAuthentication"
    name = "bearerKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "jpt_…",
            "description": "An API key from POST /v1/keys, as `Authorization: Bearer jpt_…`.",
        }
