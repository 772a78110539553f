"""`python -m pbxd` is the `pbxd` command."""

from pbxd.cli.main import main

raise SystemExit(main())
