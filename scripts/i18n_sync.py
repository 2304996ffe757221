"""Extract messages and merge them into the ja/en catalogues (run after changing UI text).

    python scripts/i18n_sync.py          # refresh app/locales/messages.pot and update ja.po / en.po
Then translate the new empty entries in app/locales/ja/LC_MESSAGES/messages.po.
"""

import os
from pathlib import Path

from babel.messages.frontend import CommandLineInterface

ROOT = Path(__file__).resolve().parent.parent
POT = ROOT / "app/locales/messages.pot"
KEYWORDS = ["-k", "N_", "-k", "_", "-k", "gettext", "-k", "ngettext:1,2"]


def main() -> int:
    os.chdir(ROOT)  # babel.cfg's patterns are relative to the project
    babel = CommandLineInterface()
    extract = ["extract", "-F", "babel.cfg", *KEYWORDS, "--no-location", "--sort-output", "-o", str(POT)]
    babel.run(["pybabel", *extract, "."])
    for lang in ("ja", "en"):
        po = ROOT / f"app/locales/{lang}/LC_MESSAGES/messages.po"
        update = po.exists()
        args = ["-i", str(POT), "-d", str(ROOT / "app/locales"), "-l", lang, "--no-wrap"]
        babel.run(
            ["pybabel", "update" if update else "init", *args, *(["--ignore-obsolete"] if update else [])]
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
