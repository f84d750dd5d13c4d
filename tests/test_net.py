"""Which address a per-address limit counts: no database, no server."""
import pytest

from jptranscribe.net import address_block


@pytest.mark.parametrize(("address", "counted_as"), [
    ("198.51.100.7", "198.51.100.7"),
    ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
    ("::ffff:198.51.100.7", "198.51.100.7"),
    ("", ""),
])
def test_ipv4_counts_per_address_and_ipv6_per_64(address, counted_as):
    assert address_block(address) == counted_as
