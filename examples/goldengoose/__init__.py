"""goldengoose: the demo service for canary releases (server.py) and its load driver (load.py).

Nothing is imported here: server.py must stay runnable from a bare copy of this directory,
and importing the package must not pull in aiohttp or prometheus_client.
"""
