"""Backends: how the core reaches an identity service.

``mimi_reactive.backends.http.HttpBackend`` speaks the reference server's REST API.
Implement ``mimi_reactive.AuthBackend`` to reach another service.
"""
