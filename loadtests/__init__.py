"""Load tests and micro-benchmarks of livecommerce.

``spike.py`` runs the flash-sale scenario of ``locustfile.py`` against a server it starts or a
deployment (see docs/loadtesting.md); the ``bench_*.py`` modules are the micro-benchmarks that
``livecommerce bench`` runs.
"""
