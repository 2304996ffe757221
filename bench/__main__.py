"""`python -m bench`: pages under load; `python -m bench security`: the security checks;
`python -m bench load`: simulated patrons on two web processes, then the invariants."""

import sys

if __name__ == "__main__":
    if sys.argv[1:2] == ["security"]:
        from bench.security import main as security

        raise SystemExit(security(sys.argv[2:]))
    if sys.argv[1:2] == ["load"]:
        from bench.load import main as load

        raise SystemExit(load(sys.argv[2:]))
    from bench.pages import main

    raise SystemExit(main())
