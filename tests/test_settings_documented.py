"""Every environment variable the settings read is in the README's settings table, so an operator
finds each knob in one place."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READ = re.compile(r"""(?:environ\.get|environ\[|env(?:bool|int|float|list)?)\(?\s*["']([A-Z][A-Z0-9_]+)["']""")


def test_the_readme_settings_table_names_every_variable_the_settings_read():
    read = set(READ.findall((ROOT / "jptranscribe/settings.py").read_text())) - {"PYTEST_VERSION"}
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Settings (environment)") : readme.index("## Tests and benchmarks")]
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", table))
    assert len(read) > 50
    assert read <= documented, f"not in the README's settings table: {sorted(read - documented)}"
