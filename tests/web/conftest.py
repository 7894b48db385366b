"""Fixtures of the web tests."""

from tests.web.upload_site import site  # noqa: F401  (a fixture: sharpmld serve on a tmp root)
