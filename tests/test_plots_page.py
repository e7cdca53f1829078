"""`dvc plots show` writes a page that renders offline: the configured HTML template inlines the plotting library."""

from __future__ import annotations

import configparser
import re

from dvc_render.html import HTML

from tests.conftest import REPO


def _template_path():
    config = configparser.ConfigParser()
    config.read(REPO / ".dvc" / "config")
    return REPO / ".dvc" / config["plots"]["html_template"]


def test_the_plots_template_is_configured_and_loads_nothing_from_the_network() -> None:
    page = _template_path().read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.IGNORECASE)  # every script inline
    assert not re.search(r"<link[^>]*\bhref\s*=\s*[\"']?(https?:)?//", page, re.IGNORECASE)
    assert "{scripts}" not in page  # dvc-render would put its CDN <script src> tags there
    for name in ("vega 5", "vega-lite 5", "vega-embed 6"):
        assert f"<script>/* {name}" in page
    assert "vegaEmbed" in page


def test_dvc_render_fills_the_template() -> None:
    html = HTML(_template_path().read_text(encoding="utf-8")).with_element('<div id="plot-x"></div>')
    html.with_scripts('<script src="https://cdn.example/vega.js"></script>')  # what dvc-render adds: dropped
    page = html.embed()
    assert '<div id="plot-x"></div>' in page and "cdn.example" not in page
