"""Day-2 operations on a deployment (docs/OPERATIONS.md): principals and certificates over
time (:mod:`.principals`, writing the revocation list of :mod:`symbolsvc.revoked`),
config.toml edits (:mod:`.editing`), backup and restore (:mod:`.backup`, over
:mod:`symbolsvc.registry.copies`), and their commands (:mod:`.commands`).

Everything here works on files and the database, never over the network; a running server
takes changes up on SIGHUP.
"""
