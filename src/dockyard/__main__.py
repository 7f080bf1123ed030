from dockyard.cli.main import run

raise SystemExit(run())
