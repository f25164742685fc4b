#!/usr/bin/env python3
"""Checks the internal links of a built mdBook.

    python3 scripts/check_book_links.py target/book

Reads every page the book built (mdBook 0.5's `toc.html`, the sidebar,
included; `print.html`, which repeats every page, and `404.html`, which
is served from the site's root, are skipped) and checks each `<a href>`
and `<img src>` that is not absolute (no scheme such as `https:` or
`mailto:`, not `//host`):

- its target file exists inside the book directory;
- with a `#fragment`, the target page (the same page for a bare `#x`) has
  an element with that `id`.

Prints each broken link as `page.html: href` and exits 1 if any; else
prints how many links it checked and exits 0. Standard library only.
"""

import os
import sys
from html.parser import HTMLParser
from urllib.parse import unquote, urlsplit

SKIPPED_PAGES = {"print.html", "404.html"}


class Page(HTMLParser):
    """The links and ids of one HTML page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.links = []
        self.ids = set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        # Old-style anchors are targets too.
        if tag == "a" and attrs.get("name"):
            self.ids.add(attrs["name"])
        if tag == "a" and attrs.get("href") is not None:
            self.links.append(attrs["href"])
        elif tag == "img" and attrs.get("src") is not None:
            self.links.append(attrs["src"])

    handle_startendtag = handle_starttag


def parse(path):
    page = Page()
    with open(path, encoding="utf-8") as f:
        page.feed(f.read())
    page.close()
    return page


def is_external(href):
    parts = urlsplit(href)
    return bool(parts.scheme) or href.startswith("//")


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    root = os.path.realpath(argv[1])
    if not os.path.isfile(os.path.join(root, "index.html")):
        print(f"{argv[1]}: no index.html: not a built book", file=sys.stderr)
        return 2

    pages = []
    for folder, _, files in os.walk(root):
        for name in files:
            if name.endswith(".html"):
                rel = os.path.relpath(os.path.join(folder, name), root)
                if rel not in SKIPPED_PAGES:
                    pages.append(rel)
    pages.sort()

    parsed = {}

    def ids_of(rel):
        if rel not in parsed:
            parsed[rel] = parse(os.path.join(root, rel))
        return parsed[rel].ids

    broken = []
    checked = 0
    for rel in pages:
        ids_of(rel)  # parses the page
        for href in parsed[rel].links:
            if is_external(href):
                continue
            checked += 1
            parts = urlsplit(href)
            if parts.path:
                target = os.path.normpath(
                    os.path.join(os.path.dirname(os.path.join(root, rel)), unquote(parts.path))
                )
                inside = target == root or target.startswith(root + os.sep)
                if not inside or not os.path.exists(target):
                    broken.append(f"{rel}: {href}")
                    continue
                if os.path.isdir(target):
                    target = os.path.join(target, "index.html")
                    if not os.path.isfile(target):
                        broken.append(f"{rel}: {href}")
                        continue
                target_rel = os.path.relpath(target, root)
            else:
                target_rel = rel
            fragment = unquote(parts.fragment)
            if fragment:
                if not target_rel.endswith(".html"):
                    broken.append(f"{rel}: {href}")
                    continue
                if fragment not in ids_of(target_rel):
                    broken.append(f"{rel}: {href}")

    # mdBook 0.5 writes each image twice (the picture and its zoomed copy):
    # each broken link is printed once per page.
    for line in dict.fromkeys(broken):
        print(line)
    if broken:
        print(f"{len(dict.fromkeys(broken))} broken links ({checked} internal links checked)", file=sys.stderr)
        return 1
    print(f"{checked} internal links checked in {len(pages)} pages, none broken")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
