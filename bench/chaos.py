"""Chaos run (issue #13.7), the command line of ``make chaos``: the engine is :mod:`tools.chaos`.

    .venv/bin/python -m bench.chaos [--eps 500] [--duration 600] [--kills 10] [--kills-while-sending 3]

Prints progress on stderr and, as the LAST line, one JSON object; exit 0 when the acceptance holds.
"""

from tools.chaos import main

if __name__ == "__main__":
    raise SystemExit(main())
