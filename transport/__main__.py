"""``python -m flashsale.transport``: the ``flashsale`` command, for a venv whose scripts are not on PATH."""

from ._cli import main

raise SystemExit(main())
