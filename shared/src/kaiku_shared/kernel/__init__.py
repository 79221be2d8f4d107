"""The shared kernel: plain Python every service's domain may use.

Nothing here imports a framework, a database driver or the rest of
``kaiku_shared``; the import-linter contracts hold it so.
"""
