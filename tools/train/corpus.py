#!/usr/bin/env python3
"""The training corpus: the King James Bible as plain text, from Debian packages only.

Debian's bible-kjv-text ships the text in the `bible` program's compressed format
(/usr/lib/bible.data); bible-kjv's `bible -f Gen1:1-Rev22:21` prints every verse on one line as
"<book><chapter>:<verse> <text>". This script turns that into one verse per line (references
dropped), a blank line after each chapter, and splits it by books:

  train.txt    Genesis .. Hebrews          (never includes a held-out verse)
  heldout.txt  James .. Revelation, the last eight books (held out from training and tokenizer)

Licence of the input: the King James Version text is in the public domain (translation of 1611;
see /usr/share/doc/bible-kjv-text/copyright); the bible program is GPL-2+ and only used here.
"""
import argparse
import hashlib
import os
import re
import subprocess
import sys

FIRST_HELDOUT_BOOK = "Jas"  # James: the held-out split runs from here to the end
REF = re.compile(r"^(\d?[A-Za-z]+)(\d+):(\d+) (.*)$")


def verses():
    """(book, chapter, verse, text) for every verse, in canonical order."""
    env = dict(os.environ, LC_ALL="C", COLUMNS="79")
    out = subprocess.run(["bible", "-f", "Gen1:1-Rev22:21"], check=True, env=env,
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE).stdout
    rows = []
    for n, line in enumerate(out.decode("ascii").splitlines()):
        m = REF.match(line)
        if not m:
            sys.exit(f"bible output line {n + 1}: not '<ref> <text>': {line[:80]!r}")
        rows.append((m.group(1), int(m.group(2)), int(m.group(3)), m.group(4).strip()))
    if len(rows) != 31102:
        sys.exit(f"bible printed {len(rows)} verses, expected 31102 (the KJV's count)")
    return rows


def as_text(rows):
    """One verse per line, a blank line after each chapter."""
    parts, last = [], None
    for book, chapter, _, text in rows:
        if last is not None and (book, chapter) != last:
            parts.append("")
        parts.append(text)
        last = (book, chapter)
    return "\n".join(parts) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="directory for train.txt and heldout.txt")
    args = ap.parse_args()
    rows = verses()
    books = list(dict.fromkeys(r[0] for r in rows))
    cut = next(i for i, r in enumerate(rows) if r[0] == FIRST_HELDOUT_BOOK)
    os.makedirs(args.out, exist_ok=True)
    for name, part in (("train.txt", rows[:cut]), ("heldout.txt", rows[cut:])):
        text = as_text(part)
        with open(os.path.join(args.out, name), "w", encoding="ascii", newline="\n") as f:
            f.write(text)
        first, last = part[0], part[-1]
        print(f"{name}: {len(part)} verses, {len(text)} bytes, {first[0]}{first[1]}:{first[2]} .. "
              f"{last[0]}{last[1]}:{last[2]}, sha256 {hashlib.sha256(text.encode()).hexdigest()[:16]}")
    print(f"{len(books)} books; held out: {', '.join(books[books.index(FIRST_HELDOUT_BOOK):])}")


if __name__ == "__main__":
    main()
