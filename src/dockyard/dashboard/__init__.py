"""The web dashboard: `dockyard daemon --ui 127.0.0.1:PORT`.

A single page (static/) served on a listener of its own, which forwards the page's
`/api/...` requests to the same Engine API the unix socket serves (one more
instance of api.app on the same services: no private back door), behind a token,
a Host check and an Origin check, because that API is root on this machine.
"""
