"""The reference portal (docs/PORTAL.md): a web page one person uses to see who looked
them up, who holds a link to them, and to verify each record in the browser.

It is a client of the server like any other, calling DisclosureService as the
``portal`` principal over mutual TLS; it imports nothing of the server's core,
log or storage.

* :mod:`.links` signed, expiring links (the stand-in for the national login)
* :mod:`.settings` the ``[portal]`` section of config.toml
* :mod:`.upstream` the gRPC calls; :mod:`.views` their replies as plain values
* :mod:`.hub` one watch stream fanned out to the open pages (live updates)
* :mod:`.i18n` Japanese and English; the operator's labels for IDs
* :mod:`.app` the Starlette application; ``templates/`` and ``static/`` its page
* :mod:`.cli` ``symbolsvc portal serve|link``
"""
