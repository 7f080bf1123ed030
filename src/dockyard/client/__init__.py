"""HTTP client for the Dockyard (Docker Engine API) daemon, stdlib only."""
