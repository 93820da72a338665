"""Every number the README states is found in the committed file that docs/claims.md names for it."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def claims() -> list[tuple[str, str, str]]:
    """``(README text, file, file text)`` rows of docs/claims.md's table."""
    text = (ROOT / "docs" / "claims.md").read_text()
    table = text.split("<!-- claims:start -->")[1].split("<!-- claims:end -->")[0]
    rows = []
    for line in table.strip().splitlines()[2:]:
        # cells are split on pipes that are not escaped as \|
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        readme, path, source = (c.strip("`").replace("\\|", "|") for c in cells[:3])
        rows.append((readme, path, source))
    return rows


def test_the_claims_table_is_not_empty_and_names_existing_files():
    rows = claims()
    assert len(rows) >= 20
    for _, path, _ in rows:
        assert (ROOT / path).is_file(), path


@pytest.mark.parametrize("readme,path,source", claims(), ids=lambda v: v[:40] if isinstance(v, str) else v)
def test_claim_is_in_the_readme_and_in_its_file(readme, path, source):
    assert readme in (ROOT / "README.md").read_text(), f"README no longer says {readme!r}: update docs/claims.md"
    assert source in (ROOT / path).read_text(), f"{path} no longer says {source!r}: update the README and claims"
