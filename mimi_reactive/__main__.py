"""``python -m mimi_reactive`` runs the command line."""

from ._cli import main

raise SystemExit(main())
