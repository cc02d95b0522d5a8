"""The approval API's routes, one Powertools router per audience: ``page`` (a reviewer holding a
signed link), ``slack`` (Slack's interactivity callbacks) and ``operators`` (the CLI, signed with
SigV4). ``common`` holds what they share: reading a body, answering, deciding.

Each module builds its router from the settings and clients the handler hands it (``routes(...)``)
and keeps no state of its own, so every copy of the handler (a function version, a test's
environment) has routers of its own, bound to its own resolver.
"""
