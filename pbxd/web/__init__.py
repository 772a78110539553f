"""The admin's window: HTTP API, web pages, health and metrics, inside `pbxd run`.

`app.build_app` makes the aiohttp application (routes, authentication, errors);
`lifecycle` adds the daemon's own parts (CDR store, AGI, ARI and calls) as `cleanup_ctx`
entries, so the whole daemon starts and stops with the application.
"""
