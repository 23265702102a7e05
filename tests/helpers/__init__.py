"""What the tests start for real: an HTTP file server, server processes on free ports, a throw-away
PostgreSQL cluster and the team's tracking server. conftest.py turns them into fixtures."""
