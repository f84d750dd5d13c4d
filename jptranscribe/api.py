"""The framework's base view for endpoints anyone may call. Views for key holders
(authentication, rate limits) are in accounts.api; reading requests and rendering answers
through serializers is jptranscribe.serializing."""

from rest_framework.views import APIView


class PublicView(APIView):
    authentication_classes = []
    permission_classes = []
