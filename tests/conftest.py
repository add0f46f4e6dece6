"""Shared by every test folder: this folder is on ``sys.path``, so helper modules here
(``drive``) import by name from unit and GPU tests alike."""
