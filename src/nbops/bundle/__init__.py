"""The deployable bundle: build, secure load, predict, serve, monitor.

A bundle is a folder (or its .tar.gz) holding the model in skops format, the exported
pipeline package whose `transform:features` step is the serving path, the input schema with
reference statistics, a pinned lock of the packages it needs, a model card, a Dockerfile and
`manifest.json`, which ties it all together with the sha256 of every file.
"""
