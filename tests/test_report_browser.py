"""The HTML report in a real headless Chromium: it loads with no console errors, and every
chart renders (its screenshot is not blank). `.ci/run` installs Debian's chromium and sets
PERSPECTIVES_REQUIRE_BROWSER=1, so there the test cannot be skipped."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from perspectives.cli.app import app
from perspectives.models.hf_agent import clear_backbones

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    required = os.environ.get("PERSPECTIVES_REQUIRE_BROWSER") == "1"
    if path is None:
        if required:
            pytest.fail("chromium is required (PERSPECTIVES_REQUIRE_BROWSER=1) but not found")
        pytest.skip("no chromium on this machine (.ci/run installs it)")
    if required:
        import playwright  # noqa: F401 - must be installed where the browser test is required
    else:
        pytest.importorskip("playwright")
    return path


def not_blank(png: bytes) -> bool:
    from PIL import Image

    gray = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float)
    return gray.std() > 8 and (gray < 160).mean() > 0.003


def test_run_report_renders_in_headless_chromium(
    tiny_model_dir, tmp_path, monkeypatch, tiny_config, run_to_end
):
    chromium = _chromium()
    monkeypatch.setenv("PERSPECTIVES_CACHE", str(tmp_path / "cache"))
    clear_backbones()
    out = run_to_end(tiny_config(tiny_model_dir, steps=3), tmp_path / "run")
    result = CliRunner().invoke(app, ["report", str(out)])
    assert result.exit_code == 0, result.output
    page_path = out / "report.html"

    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(Path(page_path).as_uri(), wait_until="load")
        charts = page.locator("div.js-plotly-plot")
        # trajectories, iso-mirror, clusters, polarization (two classes), the control charts
        assert charts.count() == 5
        assert page.locator("h2", has_text="Changes").count() == 1
        for i in range(charts.count()):
            chart = charts.nth(i)
            chart.scroll_into_view_if_needed()
            assert chart.locator("svg.main-svg").count() >= 1
            assert chart.locator("g.trace").count() >= 1, f"chart {i} has no traces"
            assert not_blank(chart.screenshot()), f"chart {i} is blank"
        broken = page.evaluate(
            "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
            ".map(i => i.src)"
        )
        assert page.locator(".pngs img").count() == 4 and broken == []
        browser.close()
    clear_backbones()
    assert problems == []
