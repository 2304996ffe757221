"""`python -m bench`: the page load benchmark; `python -m bench security`: the security checks."""

import sys

if __name__ == "__main__":
    if sys.argv[1:2] == ["security"]:
        from bench.security import main as security

        raise SystemExit(security(sys.argv[2:]))
    from bench.pages import main

    raise SystemExit(main())
