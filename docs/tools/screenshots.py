"""Screenshots of the top of a study's report.html in headless Chromium (selenium, as
tests/test_study.py opens it): at 1400 px wide (a desktop) and at 390 px (a phone, mobile emulation,
2 device pixels per CSS pixel), written beside the page (or into --out-dir).

    python docs/tools/screenshots.py reports/cifar10/report.html
    python docs/tools/screenshots.py reports/cifar10/report.html --out-dir docs/assets/study

Needs chromium and chromedriver (Debian: apt-get install chromium chromium-driver) and selenium
(the dev extra).
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

SIZES = {"1400": (1400, 1000, 1, False), "390": (390, 844, 2, True)}  # name: width, height, device pixel ratio, mobile


def shoot(page: Path, out_dir: Path) -> list[Path]:
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                 "--disable-background-networking", "--no-first-run"):
        opts.add_argument(flag)
    drv = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=opts)
    written = []
    try:
        for name, (width, height, ratio, mobile) in SIZES.items():
            drv.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                {"width": width, "height": height, "deviceScaleFactor": ratio, "mobile": mobile})
            drv.get(page.resolve().as_uri())
            time.sleep(0.5)  # the page's script folds the contents at phone width
            path = out_dir / f"report-{name}.png"
            path.write_bytes(drv.get_screenshot_as_png())
            written.append(path)
    finally:
        drv.quit()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path, help="a study's report.html")
    parser.add_argument("--out-dir", type=Path, help="where the PNGs go (default: beside the page)")
    args = parser.parse_args()
    out_dir = args.out_dir or args.page.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in shoot(args.page, out_dir):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
