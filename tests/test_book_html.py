"""The built book, tested as a reader meets it: `make check-book` after `make book` (CI runs both).

Static checks read `_build/html`; browser checks load every page in headless Chromium (Debian's package,
driven by Playwright's Python package with `executable_path`, since Playwright cannot download its own
browsers here) from a local HTTP server, with no network: pages load without console errors, MathJax
(served from the book itself) typesets the equations, every image loads, and the sidebar navigation reaches
every chapter. At 1280 px each page is also read as a reader sees it: no table shown as raw text, no table wider
than its column, no prose set as a code span; a full-page screenshot of each lands in `_build/screenshots/`.

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
from book_text import findings, numbers_as_slots, readme_quotes, verdict_tags

from bnopt.book import build as B
from bnopt.runs.paths import repo_root

ROOT = repo_root()
HTML = Path(os.environ.get("BNOPT_BOOK_HTML") or ROOT / "_build" / "html").resolve()
REQUIRED = bool(os.environ.get("BNOPT_BOOK_HTML"))
CHAPTERS = [p.stem for p in B.chapters(ROOT)]
PAGES = ["intro", *CHAPTERS, "references"]
# A Markdown table shown as text: its separator row in any dash form (Sphinx's smart quotes turn `---` into an em
# dash and `--` into an en dash), or a paragraph that is a row of cells.
RAW_TABLE = re.compile(r"\|\s*:?[-—–]+:?\s*\|")
RAW_ROW = re.compile(r"^\s*\|[^|\n]+\|[^|\n]+\|")
VIEWPORT = {"width": 1280, "height": 900}
SCREENSHOTS = HTML.parent / "screenshots"

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
    paragraphs = [unescape(re.sub(r"<[^>]+>", "", p)) for p in re.findall(r"<p>(.*?)</p>", html, flags=re.S)]
    assert not [p for p in paragraphs if RAW_ROW.search(p)], f"{page}: a paragraph of raw table cells"
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


def test_readme_numbers_appear_in_the_book():
    """Every number the README quotes in its findings section appears in the built book's text.

    A quote read from the committed runs is compared exactly on every machine: the runs are the same bits everywhere,
    and so is what the chapters compute from their records. A quote the book computes when it is built
    (`<!-- build -->` after it: theorem checks on the trained networks, Hessian spectra, the landscape at single
    points, and every number of a chapter that trains its own runs) is compared exactly only where this machine has
    the numerics of the README's reference build (`<!-- numbers-from: ... -->`: CPU vendor, the vector ISA in force,
    and the PyTorch build, `bnopt.runs.numerics.numerics`). Elsewhere SGD and float reductions round differently
    and those numbers move within noise; there each such quote must still appear in the book with only its numbers
    changed, so that the README names nothing the book no longer shows."""
    from bnopt.runs.numerics import numerics

    section = findings((ROOT / "README.md").read_text())
    reference = re.search(r"<!-- numbers-from: (.*?) -->", section)
    assert reference, "the README's findings section does not name the numerics of its reference build"
    quotes = readme_quotes(section)
    assert quotes and any(not built for _, built in quotes)
    book = " ".join(text_of(p) for p in PAGES)
    here = numerics()
    exact = {False: True, True: here == reference.group(1)}
    slots = numbers_as_slots(book)
    missing = [q for q, built in quotes if (q not in book if exact[built] else numbers_as_slots(q) not in slots)]
    assert not missing, f"README quotes the book does not show (exactly, or with other numbers where allowed): {missing}"
    compared = sum(exact[built] for _, built in quotes)
    print(f"built on {here!r}, the README's build-time numbers from {reference.group(1)!r}: {compared} of "
          f"{len(quotes)} quotes compared exactly; {sum(q not in book for q, _ in quotes)} differ (form checked)")


def test_readme_verdicts_are_the_ledgers():
    """Every verdict word the README's findings state is the one the built ledger gives the claims its tag names
    (`<!-- ledger: id -->`; `<!-- ledger quick: id -->` for the committed snapshot of the book at quick, corrected
    within that snapshot as the ledger's *What moved with scale* does). A verdict can move without any quoted number
    moving (a Benjamini-Hochberg family changes when another claim does), so the number check alone misses it."""
    from bnopt.book import claims, scales

    tagged, untagged, orphans = verdict_tags(findings((ROOT / "README.md").read_text()))
    assert tagged and not untagged and not orphans, (untagged, orphans)
    here = claims.corrected(claims.load(ROOT / B.STAGE))
    assert here, "the build's stage holds no claim records"
    ledgers = {None: here}
    for profile in {p for _, p, _ in tagged if p}:
        snap = scales.load(f"results/{profile}/{scales.SNAPSHOT_NAME}")
        assert snap, f"no snapshot of the book at {profile}"
        ledgers[profile] = claims.corrected(snap["records"])
    wrong = [f"{i}: README says {said!r}, the {'build' if p is None else p} ledger "
             f"{ledgers[p].get(i, {}).get('verdict', 'has no record')!r}"
             for said, p, ids in tagged for i in ids if ledgers[p].get(i, {}).get("verdict") != said]
    assert not wrong, "README verdicts that are not the ledger's: " + "; ".join(wrong)
    print(f"{sum(len(ids) for _, _, ids in tagged)} README verdicts compared with the ledger")

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


# What a reader sees, measured in the page (JavaScript): tables shown as raw text, tables wider than the column
# they sit in, and prose values set as monospace code spans (more than six words with a clause break, ', ' or
# '; ': a sentence, where a command such as `bnopt bench --quick` has neither). Each is a list of
# short descriptions.
READER_DEFECTS = """() => {
  const main = document.querySelector('main');
  const raw = /\\|\\s*:?[-\u2014\u2013]+:?\\s*\\||^\\s*\\|[^|\\n]+\\|[^|\\n]+\\|/;
  const rawTables = Array.from(main.querySelectorAll('p, li')).map(e => e.innerText).filter(t => raw.test(t))
    .map(t => t.slice(0, 80));
  const article = main.querySelector('article.bd-article') || main;
  const pad = getComputedStyle(article);
  const box = article.getBoundingClientRect();
  const column = {left: box.left + parseFloat(pad.paddingLeft), right: box.right - parseFloat(pad.paddingRight)};
  const wide = Array.from(main.querySelectorAll('table')).filter(t => t.offsetParent !== null).map(t => {
    const cells = Array.from(t.querySelectorAll('th, td')).map(c => c.getBoundingClientRect());
    const right = Math.max(t.getBoundingClientRect().right, ...cells.map(c => c.right));
    const holder = t.parentElement;                       // the theme's scroll container: scrolling hides columns
    const hidden = holder.scrollWidth - holder.clientWidth;
    return {width: Math.round(right - column.left + Math.max(0, hidden)), column: Math.round(column.right - column.left),
            head: (t.querySelector('tr') || t).innerText.replace(/\\s+/g, ' ').slice(0, 60)};
  }).filter(t => t.width > t.column + 1).map(t => `${t.width} px > ${t.column} px: ${t.head}`);
  const mono = Array.from(main.querySelectorAll('p code, li code, p .text_plain, li .text_plain, td .text_plain'))
    .filter(e => /mono/i.test(getComputedStyle(e).fontFamily))
    .map(e => e.innerText.trim()).filter(t => t.split(/\\s+/).length > 6 && /[,;] /.test(t)).map(t => t.slice(0, 80));
  return {rawTables, wide, mono};
}"""


def open_page(browser, server, page):
    """A tab at 1280 px showing `page`, its console errors collected, MathJax done typesetting."""
    tab = browser.new_page(viewport=VIEWPORT)
    tab.errors = []
    tab.on("console", lambda m: tab.errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: tab.errors.append(str(e)))
    tab.on("requestfailed", lambda r: tab.errors.append(f"request failed: {r.url}")
           if r.url.startswith(server) else None)
    tab.goto(f"{server}/{page}.html", wait_until="load")
    if tab.evaluate("document.querySelectorAll('.math').length") > 0:
        tab.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=20_000)
        tab.evaluate("MathJax.startup.promise")
    return tab


@pytest.mark.parametrize("page", PAGES)
def test_page_in_browser(browser, server, page):
    tab = open_page(browser, server, page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SCREENSHOTS / f"{page}.png"), full_page=True)    # for a reviewer to look at
    if tab.evaluate("document.querySelectorAll('.math').length") > 0:
        typeset = tab.evaluate("document.querySelectorAll('mjx-container').length")
        raw = tab.evaluate("Array.from(document.querySelectorAll('.math')).filter("
                           "e => !e.querySelector('mjx-container')).length")
        assert typeset > 0 and raw == 0, f"{page}: {raw} equations left as raw LaTeX, {typeset} typeset"
    broken = tab.evaluate("Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
                          ".map(i => i.src)")
    assert broken == [], f"{page}: images that did not load: {broken}"
    assert tab.errors == [], f"{page}: console errors {tab.errors}"
    tab.close()


@pytest.mark.parametrize("page", PAGES)
def test_page_reads_as_a_reader_sees_it(browser, server, page):
    """At 1280 px: no table shown as raw text (in any dash or pipe form), no table wider than the column it sits
    in (the reader would have to scroll sideways to reach its last columns), no glued prose value of more than a
    few words set as a monospace code span."""
    tab = open_page(browser, server, page)
    found = tab.evaluate(READER_DEFECTS)
    tab.close()
    assert found["rawTables"] == [], f"{page}: tables shown as raw text: {found['rawTables']}"
    assert found["wide"] == [], f"{page}: tables wider than the text column at 1280 px: {found['wide']}"
    assert found["mono"] == [], f"{page}: prose set as monospace code: {found['mono']}"


def test_the_ledger_reads_on_a_phone(browser, server):
    """At 390 px the ledger's table is one card per claim: no table wider than the column, every claim's verdict badge
    visible, the column labels in place of the header."""
    tab = browser.new_page(viewport={"width": 390, "height": 844})
    tab.goto(f"{server}/ledger.html", wait_until="load")
    found = tab.evaluate(READER_DEFECTS)
    cards = tab.evaluate("""() => {
      const t = document.querySelector('#the-ledger table');
      const rows = Array.from(t.querySelectorAll('tbody tr'));
      return {display: getComputedStyle(rows[0]).display, rows: rows.length,
              head: getComputedStyle(t.querySelector('thead')).display,
              label: getComputedStyle(rows[0].children[3], '::before').content,
              page: document.documentElement.scrollWidth};
    }""")
    tab.close()
    assert found["wide"] == [], f"tables wider than the phone's column: {found['wide']}"
    assert cards["display"] == "block" and cards["head"] == "none" and cards["rows"] > 40
    assert "effect" in cards["label"] and cards["page"] <= 390


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
    """The front page's scale table (bnopt.book.build.scale_table): one row per chapter, in the book's order, each
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
