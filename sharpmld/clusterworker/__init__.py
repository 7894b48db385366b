"""The cluster worker process (``sharpmld worker --cluster nats://…``): one per GPU, any host.

It takes photos one at a time from the broker, has the supervised model worker (kept warm,
exactly as the single-host daemon runs it) write each photo's outputs into an attempt folder
of its own on the shared root, and commits them with the write-once marker before it acks.
This process is on the daemon side of the house: it never imports torch. ``loop`` holds the
start/step/stop loop, ``held`` the photo in hand, ``request`` turns a task into the model
worker's request, ``records`` writes what an attempt says about itself, and ``status`` the
file that ``sharpmld status`` and the intake read.
"""
