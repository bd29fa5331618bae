"""The built book, tested as a reader meets it: `make check-book` after `make book` (CI runs both).

Static checks read `_build/html`; browser checks load every page in headless Chromium (Debian's package,
driven by Playwright's Python package with `executable_path`, since Playwright cannot download its own
browsers here) from a local HTTP server, with no network: pages load without console errors, MathJax
(served from the book itself) typesets the equations, every image loads, no raw Markdown table text is
shown, and the sidebar navigation reaches every chapter.

They run when BNOPT_BOOK_HTML names the built book's folder (`make check-book` sets it, and then a
missing book or browser is an error, so CI cannot pass them by skipping); `make test` skips them.
"""
from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
from html import unescape
from pathlib import Path

import pytest

from bnopt import build as B
from bnopt.paths import repo_root

ROOT = repo_root()
HTML = Path(os.environ.get("BNOPT_BOOK_HTML") or ROOT / "_build" / "html").resolve()
REQUIRED = bool(os.environ.get("BNOPT_BOOK_HTML"))
CHAPTERS = [p.stem for p in B.chapters(ROOT)]
PAGES = ["intro", *CHAPTERS, "references"]
RAW_TABLE = re.compile(r"\|\s*:?-{3,}:?\s*\|")          # a Markdown table's separator row, shown as text

if not REQUIRED:
    pytest.skip("the built book is tested by `make check-book` (after `make book`)", allow_module_level=True)
if not (HTML / "index.html").exists():
    raise RuntimeError(f"BNOPT_BOOK_HTML={HTML} has no index.html: run `make book` first")


def text_of(page: str) -> str:
    """The text of a page's main content: tags stripped, scripts and code-cell sources dropped."""
    s = (HTML / f"{page}.html").read_text()
    s = s[s.find("<main"): s.rfind("</main>")]
    s = re.sub(r"<(script|style)\b.*?</\1>", " ", s, flags=re.S)
    s = re.sub(r'<div class="highlight-ipython3[^"]*"><div class="highlight"><pre>.*?</pre>', " ", s, flags=re.S)  # code
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", s)))


@pytest.mark.parametrize("page", PAGES)
def test_page_exists_without_errors_or_raw_text(page):
    path = HTML / f"{page}.html"
    assert path.exists(), f"{page}.html is missing from the built book"
    html, text = path.read_text(), text_of(page)
    assert "Traceback (most recent call last)" not in text
    assert 'class="output error' not in html and "output traceback" not in html
    assert "{glue" not in text and "{ref}" not in text and "{numref}" not in text   # unresolved roles
    assert not RAW_TABLE.search(text), f"{page}: a Markdown table is shown as raw text"
    assert str(ROOT) not in html, f"{page} shows the building machine's path {ROOT}"
    data = os.environ.get("BNOPT_DATA", "").strip()
    if data:
        assert str(Path(data).resolve()) not in html, f"{page} shows the data copy's absolute path"


@pytest.mark.parametrize("page", CHAPTERS)
def test_figures_exist_and_are_numbered_per_chapter(page):
    html = (HTML / f"{page}.html").read_text()
    for src in re.findall(r'<img[^>]+src="([^"]+)"', html):
        if not src.startswith(("http:", "https:", "data:")):
            assert (HTML / src).is_file(), f"{page}: image {src} is missing"
    captions = re.findall(r'<span class="caption-number">([^<]*)</span>', html)
    chapter_no = CHAPTERS.index(page) + 1
    for cap in captions:
        assert re.fullmatch(rf"Fig\. {chapter_no}\.\d+ ?", cap), f"{page}: caption number {cap!r}"
    figures = re.findall(r'<img[^>]+src="([^"]+\.png)"', html)
    assert len(figures) == len(set(figures)), f"{page} shows a figure twice"


def test_each_glued_figure_is_shown_once():
    """A figure glued for a {glue:figure} directive must not also appear as its cell's own output."""
    for page in CHAPTERS:
        html = (HTML / f"{page}.html").read_text()
        n_img = len(re.findall(r'<img[^>]+src="_images/[^"]+\.png"', html))
        n_fig = len(re.findall(r'<figure class="align-default" id="fig-', html))
        assert n_img <= n_fig + 1, f"{page}: {n_img} images for {n_fig} numbered figures"


NUMBER = re.compile(r"[-+−]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?")


def numbers_as_slots(text: str) -> str:
    """The text with every number replaced by '#': what a quote says, whatever its values."""
    return NUMBER.sub("#", text)


def test_readme_numbers_appear_in_the_book():
    """Every number the README quotes in its findings section appears in the built book's text, when this machine
    has the numerics of the README's reference build (`<!-- numbers-from: ... -->`: CPU vendor and vector ISA, and
    the PyTorch build, `bnopt.cache.numerics`). On other numerics every SGD trajectory rounds differently and the
    numbers move within seed noise; there each quote must still appear in the book with only its numbers changed,
    so that the README names nothing the book no longer shows."""
    from bnopt.cache import numerics
    assert numbers_as_slots("306 ± 3 steps (3/3 seeds), A/B = 0.44 (95 % CI −0.43 to 1.2e-05), 1,584 units") == \
        "# ± # steps (#/# seeds), A/B = # (# % CI # to #), # units"
    readme = (ROOT / "README.md").read_text()
    section = re.search(r"^## Findings.*?(?=^## )", readme, flags=re.S | re.M)
    assert section, "README.md has no '## Findings' section"
    reference = re.search(r"<!-- numbers-from: (.*?) -->", section.group(0))
    assert reference, "the README's findings section does not name the numerics of its reference build"
    quoted = re.findall(r"`([^`\n]*\d[^`\n]*)`", section.group(0))   # numbers are quoted as `1.23 ± 0.04`
    assert quoted
    book = " ".join(text_of(p) for p in PAGES)
    if numerics() == reference.group(1):
        missing = [q for q in quoted if q not in book]
        assert not missing, f"README quotes numbers the book does not show: {missing}"
        return
    slots = numbers_as_slots(book)
    missing = [q for q in quoted if numbers_as_slots(q) not in slots]
    assert not missing, f"README quotes the book no longer shows, even with other numbers: {missing}"
    moved = sum(q not in book for q in quoted)
    print(f"built with numerics {numerics()!r}, not the README's {reference.group(1)!r}: {moved} of {len(quoted)} "
          f"quoted numbers differ; their form was checked")


# --- in a real browser ----------------------------------------------------------------------------

CHROMIUM = os.environ.get("BNOPT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def server():
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"no Chromium at {CHROMIUM}: `make check-book` installs Debian's chromium")
    from playwright import sync_api

    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


@pytest.mark.parametrize("page", PAGES)
def test_page_in_browser(browser, server, page):
    tab = browser.new_page()
    errors = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}")
           if r.url.startswith(server) else None)
    tab.goto(f"{server}/{page}.html", wait_until="load")
    has_math = tab.evaluate("document.querySelectorAll('.math').length") > 0
    if has_math:
        tab.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=20_000)
        tab.evaluate("MathJax.startup.promise")
        typeset = tab.evaluate("document.querySelectorAll('mjx-container').length")
        raw = tab.evaluate("Array.from(document.querySelectorAll('.math')).filter("
                           "e => !e.querySelector('mjx-container')).length")
        assert typeset > 0 and raw == 0, f"{page}: {raw} equations left as raw LaTeX, {typeset} typeset"
    broken = tab.evaluate("Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
                          ".map(i => i.src)")
    assert broken == [], f"{page}: images that did not load: {broken}"
    paragraphs = tab.evaluate("Array.from(document.querySelectorAll('main p')).map(p => p.innerText)")
    assert not [p for p in paragraphs if RAW_TABLE.search(p)], f"{page}: raw Markdown table text"
    assert errors == [], f"{page}: console errors {errors}"
    tab.close()


def test_navigation_reaches_every_chapter(browser, server):
    tab = browser.new_page()
    tab.goto(f"{server}/index.html", wait_until="load")       # index.html redirects to the front page
    tab.wait_for_url(f"{server}/intro.html")
    links = tab.evaluate("Array.from(document.querySelectorAll('nav.bd-links a, .bd-sidebar a'))"
                         ".map(a => a.getAttribute('href'))")
    reached = {Path(h.split("#")[0]).stem for h in links if h and h.endswith(".html")}
    assert set(CHAPTERS) <= reached, f"the sidebar does not link {sorted(set(CHAPTERS) - reached)}"
    for page in CHAPTERS:
        assert tab.goto(f"{server}/{page}.html").ok
    tab.close()


def test_front_page_states_the_profile_of_every_chapter():
    """The front page's scale table (bnopt.build.scale_table): one row per chapter, in the book's order, each
    with a link to the chapter and the profile it was built at."""
    html = (HTML / "intro.html").read_text()
    table = next((t for t in re.findall(r"<table.*?</table>", html, flags=re.S) if "Trained on" in t), None)
    assert table, "the front page has no scale table"
    rows = re.findall(r"<tr.*?</tr>", table, flags=re.S)[1:]
    assert [re.search(r'href="([\w]+)\.html', r).group(1) for r in rows] == CHAPTERS
    profiles = B.profiles(ROOT)
    for r in rows:
        cells = [unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<td.*?</td>", r, flags=re.S)]
        assert cells[1].split()[0] in profiles, f"{cells[0]}: no profile in {cells[1]!r}"
