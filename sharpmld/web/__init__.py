"""The local web app (``sharpmld serve``): a separate process that reads the folder tree.

It never imports the daemon, the worker or torch; the daemon never imports it.
"""
