"""The thin layer that talks to the API server: clients, server-side apply,
reads, an in-memory cache of watched objects and the reconcile queue.
Everything here does I/O or holds state; decisions live in the pure layers."""
