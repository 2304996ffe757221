"""Extract messages and merge them into the ja/en catalogues (run after changing UI text).

    python scripts/i18n_sync.py          # refresh app/locales/messages.pot and update ja.po / en.po
Then translate the new empty entries in app/locales/ja/LC_MESSAGES/messages.po.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POT = ROOT / "app/locales/messages.pot"


def main() -> int:
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "extract", "-F", "babel.cfg",
                    "-k", "N_", "-k", "_", "-k", "gettext", "-k", "ngettext:1,2", "--no-location",
                    "--sort-output", "-o", str(POT), "."], check=True, cwd=ROOT)
    for lang in ("ja", "en"):
        po = ROOT / f"app/locales/{lang}/LC_MESSAGES/messages.po"
        cmd = "update" if po.exists() else "init"
        subprocess.run([sys.executable, "-m", "babel.messages.frontend", cmd, "-i", str(POT), "-d",
                        str(ROOT / "app/locales"), "-l", lang, "--no-wrap"] + (["--ignore-obsolete"] if cmd == "update" else []),
                       check=True, cwd=ROOT)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
