"""Backends: how the core reaches an identity service.

``mimi_reactive.backends.http.HttpBackend`` speaks the reference server's REST API;
``mimi_reactive.backends.firebase.FirebaseBackend`` speaks Firebase Auth's.
Implement ``mimi_reactive.AuthBackend`` to reach another service.
"""
