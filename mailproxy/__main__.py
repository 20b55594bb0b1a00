"""``python -m mailproxy``: the same as the ``mailproxy`` command."""

from mailproxy.cli import main

raise SystemExit(main())
